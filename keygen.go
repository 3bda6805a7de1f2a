package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"time"
)

// keygen prints a fresh ENCRYPTION_KEYS entry: the id names the day it was made, so keys sort by
// age when several are listed during a rotation.
func keygen(stdout io.Writer, now time.Time) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err := fmt.Fprintf(stdout, "k%s:%s\n", now.UTC().Format("20060102"), base64.StdEncoding.EncodeToString(secret))
	return err
}
