package simulated

import (
	"crypto/sha256"
	"fmt"
	"net/netip"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// network hands out the addresses of one network: IPv4 from a /16 of
// 10.0.0.0/8 and IPv6 from a /64 of fd00::/8, both picked by the network's name.
type network struct {
	v4Base, v6Base netip.Addr
	// next are the host numbers to try next, so assigning is O(1) amortized.
	nextV4, nextV6 uint32
	// owner maps every address in use to its machine's ID.
	owner map[netip.Addr]string
}

// v4Hosts is how many IPv4 host numbers a network hands out (.0.1 to .255.254, minus the broadcast-like ends).
const v4Hosts = 1<<16 - 2

// network returns the network a NIC attaches to, by its network URI or else its subnet URI.
// The caller holds c.mu.
func (c *Cloud) network(networkURI, subnet string) *network {
	key := networkURI
	if key == "" {
		key = "subnet:" + subnet
	}
	if n := c.networks[key]; n != nil {
		return n
	}
	sum := sha256.Sum256([]byte(key))
	var v6 [16]byte
	v6[0] = 0xfd
	copy(v6[1:8], sum[2:9])
	n := &network{
		v4Base: netip.AddrFrom4([4]byte{10, sum[0], 0, 0}),
		v6Base: netip.AddrFrom16(v6),
		owner:  map[netip.Addr]string{},
	}
	c.networks[key] = n
	return n
}

// assign gives machine id the requested address, or the next free one when
// none is requested. A requested address that another machine holds is refused.
func (n *network) assign(requested string, v6 bool, id string) (string, error) {
	if requested != "" {
		addr, err := netip.ParseAddr(requested)
		if err != nil || addr.Is6() != v6 {
			return "", provider.Permanent("InvalidAddress", "%q is not a valid IPv%s address", requested, map[bool]string{false: "4", true: "6"}[v6])
		}
		if owner, taken := n.owner[addr]; taken && owner != id {
			// The refusal becomes the instance's status message and an
			// event: it must not name the holder, which may be another
			// project's machine.
			return "", provider.Permanent("AddressInUse", "address %s is already assigned to another machine", addr)
		}
		n.owner[addr] = id
		return addr.String(), nil
	}
	for tries := 0; tries < v4Hosts; tries++ {
		var addr netip.Addr
		if v6 {
			n.nextV6++
			addr = hostAddr(n.v6Base, n.nextV6)
		} else {
			n.nextV4 = n.nextV4%v4Hosts + 1
			addr = hostAddr(n.v4Base, n.nextV4)
		}
		if _, taken := n.owner[addr]; !taken {
			n.owner[addr] = id
			return addr.String(), nil
		}
	}
	return "", fmt.Errorf("simulated: the network has no free address left")
}

// take marks an address of a stored machine as in use.
func (n *network) take(addr, id string) {
	if a, err := netip.ParseAddr(addr); err == nil {
		n.owner[a] = id
	}
}

// release frees an address that machine id holds.
func (n *network) release(addr, id string) {
	if a, err := netip.ParseAddr(addr); err == nil && n.owner[a] == id {
		delete(n.owner, a)
	}
}

// hostAddr is base plus host number h in its last four bytes.
func hostAddr(base netip.Addr, h uint32) netip.Addr {
	b := base.AsSlice()
	l := len(b)
	b[l-4] |= byte(h >> 24)
	b[l-3] |= byte(h >> 16)
	b[l-2] |= byte(h >> 8)
	b[l-1] |= byte(h)
	a, _ := netip.AddrFromSlice(b)
	return a
}
