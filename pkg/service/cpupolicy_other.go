//go:build !linux

package service

import "errors"

func applyCPUPolicy(p CPUPolicy) error {
	if p != CPUBatch {
		return nil
	}
	return errors.New("scheduling policies are set on Linux only")
}
