"""Domain rules from the user agreement (A) and the SSC article (K); no gRPC, no storage."""
