#!/bin/bash
# Enclave entry point for the egress example: no hosts entries, no proxy variables;
# the enclave half points /etc/resolv.conf at its own DNS server.
ip link set lo up
/root/qproxy enclave --config=/root/config_qproxy.toml &
# The application: any TLS client that verifies api.example.com's certificate.
exec curl --retry 5 --retry-connrefused -sS https://api.example.com/
