// End-to-end tests: idp, todo0, isv and the gateway on loopback ports.
