"""Key management (K1-K7, A13(1)): a root key in a keystore (an HSM over PKCS#11, or a local
file for development), keys per bank and purpose below it, per-holder keys below those, two
algorithm suites, rotation and key incidents."""
