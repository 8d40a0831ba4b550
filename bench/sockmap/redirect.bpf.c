/*
 * The sockmap experiment's verdict program (bench/sockmap/README.md): every skb that
 * arrives on a socket in the map goes out of that socket's partner, found by the cookie
 * of the socket that owns the skb. A TCP skb is owned by its receiver; a Unix one by its
 * sender, so for the Unix socket the far end's cookie is the key.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} partner SEC(".maps");

SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff *skb)
{
	__u64 owner = bpf_get_socket_cookie(skb);
	__u32 *to = bpf_map_lookup_elem(&partner, &owner);

	if (!to)
		return SK_PASS;
	return bpf_sk_redirect_map(skb, &socks, *to, 0);
}

char LICENSE[] SEC("license") = "GPL";
