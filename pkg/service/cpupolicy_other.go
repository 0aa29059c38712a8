//go:build !linux

package service

import "errors"

func applyBatch() error {
	return errors.New("scheduling policies are set on Linux only")
}
