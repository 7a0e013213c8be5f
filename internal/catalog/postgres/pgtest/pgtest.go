// Package pgtest gives tests a fresh PostgreSQL database on the machine's server
// (127.0.0.1:5432, user postgres, trust authentication; .ci/run starts it when it is down), or
// skips them with the reason when no server answers there (in CI, CI=true, that fails them
// instead). A server that answers but refuses the connection fails the test.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminURLEnv overrides the server tests use: a URL of a database where the user may CREATE
// DATABASE (default postgres://postgres@127.0.0.1:5432/postgres).
const AdminURLEnv = "KVSD_TEST_POSTGRES"

const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func adminURL() string {
	if u := os.Getenv(AdminURLEnv); u != "" {
		return u
	}
	return defaultAdminURL
}

// NewDatabase creates an empty database with a unique name, drops it when the test ends, and
// returns its URL. It skips the test when the server is unreachable.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := adminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if _, unreachable := errors.AsType[*net.OpError](err); unreachable && os.Getenv("CI") != "true" {
		t.Skipf("PostgreSQL is not reachable at %s (set %s to use another server): %v", admin, AdminURLEnv, err)
	}
	if err != nil {
		t.Fatalf("PostgreSQL at %s (%s): %v", admin, AdminURLEnv, err)
	}
	defer conn.Close(context.Background())
	name := "kvsd_test_" + hex.EncodeToString(randomBytes(t, 8))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE ends the sessions a test left open (a catalog it did not close).
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", AdminURLEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
