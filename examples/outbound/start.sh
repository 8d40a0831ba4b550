#!/bin/bash
# Enclave entry point for the outbound example: the API's name points at the
# enclave half of qproxy, which listens on 127.0.0.1:443.
ip link set lo up
echo "127.0.0.1 api.example.com" >>/etc/hosts
/root/qproxy enclave --config=/root/config_qproxy.toml &
# The application: any TLS client that verifies api.example.com's certificate.
exec curl --retry 5 --retry-connrefused -sS https://api.example.com/
