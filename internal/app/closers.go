package app

import "errors"

// closers is a stack of Close functions: Start pushes each component's as it builds it, and a
// failed start or Shutdown closes them newest first, so nothing is closed before what uses it.
type closers []func() error

func (c *closers) push(close func() error) { *c = append(*c, close) }

// close calls every Close function, newest first, once, and joins their errors.
func (c *closers) close() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}
