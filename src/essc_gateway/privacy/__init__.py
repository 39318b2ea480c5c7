"""Personal data beyond encryption (A13, A14): erasure on its grounds, disclosures with
grounds, retention."""
