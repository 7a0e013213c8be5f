//go:build !linux

package browsertest

import "os/exec"

func killWithParent(*exec.Cmd) {}
