#!/bin/bash
# The enclave's entry point: loopback up, the enclave half of qproxy, then the app.
ip link set lo up
/root/qproxy enclave --config=/root/config_qproxy.toml &
/root/app.sh
