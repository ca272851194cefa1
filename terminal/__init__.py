"""The wire to a terminal: model table, transports, management protocol, discovery, fastboot."""
