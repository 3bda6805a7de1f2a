package models

// WithBeforeWrite lets tests change a row between RotateKeys' read and its
// compare-and-swap write.
func WithBeforeWrite(o RotateOptions, fn func(table string, key uint64)) RotateOptions {
	o.beforeWrite = fn
	return o
}
