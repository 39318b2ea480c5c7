"""Who may call which OperatorService method (A13(1)), and the access log of every call."""
