package catalog_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kvsd/kvsd/"

// domain are the packages that use the catalog through its contracts. None may depend on an
// implementation (their tests may, where they need a real catalog): the composition root
// (internal/app) picks one.
var domain = []string{
	"stream", "ingest", "fragstore", "playback", "retention", "imagegen", "notify", "streamwork",
}

// implementations are the catalog implementations the domain packages must not reach.
var implementations = []string{module + "internal/catalog/bolt", "go.etcd.io/bbolt", module + "internal/catalog/postgres", "github.com/jackc/pgx/v5"}

// TestDomainPackagesDoNotDependOnAnImplementation walks each domain package's imports, its
// tests' excluded, through the module's packages. It reads the sources itself (go/build, not
// a go list child process) so that go test's cache notices when they change.
func TestDomainPackagesDoNotDependOnAnImplementation(t *testing.T) {
	root, err := filepath.Abs("../..") // this package is internal/catalog
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range domain {
		for dep, via := range moduleDeps(t, root, module+"internal/"+p) {
			for _, impl := range implementations {
				if dep == impl || strings.HasPrefix(dep, impl+"/") {
					t.Errorf("internal/%s depends on %s (imported by %s); depend on internal/catalog's contracts instead", p, dep, via)
				}
			}
		}
	}
}

// moduleDeps returns every package path that pkg imports directly or through the module's own
// packages, each with a package that imports it.
func moduleDeps(t *testing.T, root, pkg string) map[string]string {
	t.Helper()
	deps := map[string]string{}
	todo := []string{pkg}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		bp, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(p, module)), 0)
		if err != nil {
			t.Fatalf("read package %s: %v", p, err)
		}
		for _, imp := range bp.Imports {
			if _, seen := deps[imp]; seen {
				continue
			}
			deps[imp] = p
			if strings.HasPrefix(imp, module) {
				todo = append(todo, imp)
			}
		}
	}
	return deps
}
