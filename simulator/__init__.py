"""Virtual terminals that speak the real wire (pseudo-terminal, fastboot TCP, simulated USB bus)."""
