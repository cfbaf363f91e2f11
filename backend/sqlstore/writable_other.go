//go:build !unix

package sqlstore

func writable(string) error { return nil }
