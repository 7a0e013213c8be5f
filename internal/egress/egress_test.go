package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/egress"
	"github.com/kvsd/kvsd/internal/egress/egresstest"
)

func TestCheckAddr(t *testing.T) {
	open, strict := egress.Policy{}, egress.Policy{DenyPrivate: true}
	for _, tc := range []struct {
		addr         string
		open, strict bool // allowed by each policy
	}{
		{"169.254.169.254", false, false},
		{"169.254.0.1", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"fe80::1", false, false},
		{"fe80::1%lo", false, false},
		{"fd00:ec2::254", false, false},
		{"127.0.0.1", true, false},
		{"::1", true, false},
		{"10.1.2.3", true, false},
		{"172.16.0.1", true, false},
		{"192.168.1.10", true, false},
		{"100.64.0.1", true, false},
		{"fd12::1", true, false},
		{"0.0.0.0", true, false},
		{"::", true, false},
		{"93.184.216.34", true, true},
		{"2606:4700::1111", true, true},
	} {
		a := netip.MustParseAddr(tc.addr)
		require.Equal(t, tc.open, open.CheckAddr(a) == nil, "%s by default", tc.addr)
		require.Equal(t, tc.strict, strict.CheckAddr(a) == nil, "%s with DenyPrivate", tc.addr)
	}
}

// A name is checked by what it resolves to, when set (Check) and again when connecting
// (Control): a zone that answers a harmless address first and the metadata address later is
// caught at the connection.
func TestNamesAreCheckedAfterResolution(t *testing.T) {
	dns := egresstest.StartDNS(t, map[string]string{"metadata.test": "169.254.169.254", "v6meta.test": "fd00:ec2::254", "hook.test": "127.0.0.1"})
	p := egress.Policy{Resolver: dns.Resolver()}
	ctx := context.Background()

	var fe *egress.ForbiddenError
	require.ErrorAs(t, p.Check(ctx, "metadata.test"), &fe)
	require.Equal(t, "metadata.test", fe.Host)
	require.Contains(t, fe.Error(), "metadata.test resolves to 169.254.169.254")
	require.Error(t, p.Check(ctx, "v6meta.test"))
	require.NoError(t, p.Check(ctx, "hook.test"))
	require.NoError(t, p.Check(ctx, "unknown.test"), "a name that does not resolve is checked when connecting")
	require.Error(t, egress.Policy{DenyPrivate: true, Resolver: dns.Resolver()}.Check(ctx, "hook.test"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err := p.Dialer(0).DialContext(ctx, "tcp", net.JoinHostPort("hook.test", port))
	require.NoError(t, err, "loopback is allowed by default")
	c.Close()
	_, err = egress.Policy{DenyPrivate: true, Resolver: dns.Resolver()}.Dialer(0).DialContext(ctx, "tcp", net.JoinHostPort("hook.test", port))
	require.ErrorAs(t, err, &fe, "refused with DenyPrivate")

	dns.Set("hook.test", "169.254.169.254") // rebinding after the check
	_, err = p.Dialer(0).DialContext(ctx, "tcp", net.JoinHostPort("hook.test", port))
	require.ErrorAs(t, err, &fe)
	require.True(t, errors.As(err, &fe) && fe.Addr == netip.MustParseAddr("169.254.169.254"))
}
