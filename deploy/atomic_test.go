package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sixtyFourBit are sync/atomic's functions on plain 64-bit words. On 386
// and 32-bit ARM they fault unless the word is 64-bit aligned, which Go
// guarantees only for the first word of an allocation; the atomic.Int64 and
// atomic.Uint64 types are aligned everywhere (sync/atomic, "Bugs").
var sixtyFourBit = map[string]bool{}

func init() {
	for _, op := range []string{"Add", "Load", "Store", "Swap", "CompareAndSwap", "And", "Or"} {
		for _, typ := range []string{"Int64", "Uint64"} {
			sixtyFourBit[op+typ] = true
		}
	}
}

// TestNo64BitAtomicFunctions: the armv7 build must not depend on where a
// field falls in a struct, so the repository uses the atomic types only.
func TestNo64BitAtomicFunctions(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		name := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "sync/atomic" {
				name = "atomic"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && sixtyFourBit[sel.Sel.Name] {
					t.Errorf("%s: atomic.%s on a plain word faults on 32-bit ARM when unaligned: use atomic.Int64 or atomic.Uint64", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files found: the walk is broken", files)
	}
}
