// Package egress decides which addresses kvsd may connect to for destinations that API callers
// choose (notification webhooks and brokers), so that a stream's configuration cannot turn
// kvsd against the network it runs in: cloud metadata services and link-local addresses are
// always refused, loopback and private ranges when the operator says so.
//
// A destination is checked twice: when it is set (its host, resolved, so the caller hears at
// once) and at every connection, on the address the dialer is about to use (Control), which
// catches a name that resolves differently later (DNS rebinding).
package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Policy says which addresses are refused. The zero Policy refuses only the always-refused
// ones.
type Policy struct {
	// DenyPrivate also refuses loopback, private (RFC 1918, fc00::/7), shared (100.64.0.0/10)
	// and unspecified addresses (kvsd serve --deny-private-destinations).
	DenyPrivate bool
	// Resolver resolves hosts for Check; nil: net.DefaultResolver.
	Resolver *net.Resolver
}

// ForbiddenError says which address was refused and why.
type ForbiddenError struct {
	Host string // the name that resolved to Addr; empty when Addr was given
	Addr netip.Addr
	Why  string
}

func (e *ForbiddenError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("%s resolves to %s, %s, which kvsd never connects to for a destination", e.Host, e.Addr, e.Why)
	}
	return fmt.Sprintf("%s is %s, which kvsd never connects to for a destination", e.Addr, e.Why)
}

var (
	awsMetadataV6 = netip.MustParseAddr("fd00:ec2::254")
	sharedV4      = netip.MustParsePrefix("100.64.0.0/10")
)

// CheckAddr refuses a forbidden address.
func (p Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap() // ::ffff:169.254.169.254 is 169.254.169.254
	why := ""
	switch {
	case a.WithZone("") == awsMetadataV6:
		why = "a cloud metadata address"
	case a.IsLinkLocalUnicast(): // 169.254.0.0/16 (metadata services) and fe80::/10
		why = "a link-local address (where cloud metadata services answer)"
	case !p.DenyPrivate:
	case a.IsLoopback():
		why = "a loopback address (refused by --deny-private-destinations)"
	case a.IsPrivate() || sharedV4.Contains(a):
		why = "a private address (refused by --deny-private-destinations)"
	case a.IsUnspecified():
		why = "the unspecified address, which reaches this host (refused by --deny-private-destinations)"
	}
	if why == "" {
		return nil
	}
	return &ForbiddenError{Addr: a, Why: why}
}

// resolveTimeout bounds the lookup of Check: a slow DNS must not hold an API call.
const resolveTimeout = 3 * time.Second

// Check refuses host (a name or an address literal) when it is, or resolves to, a forbidden
// address. A name that does not resolve passes: the destination may not exist yet, and Control
// checks every connection anyway.
func (p Policy) Check(ctx context.Context, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(a)
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			e := err.(*ForbiddenError)
			e.Host = host
			return e
		}
	}
	return nil
}

// Control is a net.Dialer Control function: it refuses to connect to a forbidden address,
// after the name was resolved, whatever it resolved to.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: dialing %s %q: not an address", network, address)
	}
	return p.CheckAddr(ap.Addr())
}

// Dialer returns a dialer that applies p to every connection it makes.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Resolver: p.Resolver, Control: p.Control}
}
