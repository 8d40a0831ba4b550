# Sourced by bench/profile.sh and bench/sockmap/run.sh: a network namespace, a work
# directory and background processes that all go away when the script exits, however.
# Sets ns and work; add each background process's pid to pids.
ns=qpbench$$
work=$(mktemp -d /tmp/qpbench.XXXXXX)
pids=()

netns_run_cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap netns_run_cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
