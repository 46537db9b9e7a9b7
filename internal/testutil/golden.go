package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Golden compares got with the golden file at path, rewriting the file first when
// update is set (go test -update).
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

// ValidateJUnit checks the JUnit XML file at path against the schema CI servers read
// (../shared/schemas/junit.xsd, found from the test's directory up), with xmllint. In
// CI (CI set) a missing xmllint fails the test; elsewhere the check is skipped.
func ValidateJUnit(t testing.TB, path string) {
	t.Helper()
	var xsd string
	for dir, _ := os.Getwd(); ; dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, "..", "shared", "schemas", "junit.xsd"); fileExists(p) {
			xsd = p
			break
		}
		if dir == filepath.Dir(dir) {
			t.Log("no ../shared/schemas/junit.xsd: schema check skipped")
			return
		}
	}
	if _, err := exec.LookPath("xmllint"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xmllint is not installed: the JUnit schema check cannot run in CI")
		}
		t.Log("xmllint not installed: schema check skipped")
		return
	}
	if out, err := exec.Command("xmllint", "--noout", "--schema", xsd, path).CombinedOutput(); err != nil {
		t.Errorf("%s fails the JUnit schema: %v\n%s", path, err, out)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
