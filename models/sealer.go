package models

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"rtbshopify/config"
)

// Sealer encrypts secrets for storage with AES-256-GCM. A sealed value is
// "KEYID:BASE64(nonce|ciphertext)": the first key seals, any listed key
// opens, so keys can be rotated. The associated data (e.g. the shop
// domain) binds a ciphertext to its row: a token copied onto another shop
// does not open.
type Sealer struct {
	active string
	aeads  map[string]cipher.AEAD
}

// NewSealer builds a Sealer from ENCRYPTION_KEYS.
func NewSealer(keys []config.Key) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no encryption keys")
	}
	s := &Sealer{active: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads[k.ID] = aead
	}
	return s, nil
}

// ErrUnseal means a sealed value could not be opened: wrong key, altered
// value, or a different associated value.
var ErrUnseal = errors.New("stored secret cannot be decrypted (unknown key id or altered value)")

// Seal encrypts plaintext; the empty string stays empty.
func (s *Sealer) Seal(plaintext, associated string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	aead := s.aeads[s.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(associated))
	return s.active + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with any known key.
func (s *Sealer) Open(sealed, associated string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	id, b64, ok := strings.Cut(sealed, ":")
	aead, known := s.aeads[id]
	if !ok || !known {
		return "", ErrUnseal
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", ErrUnseal
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(associated))
	if err != nil {
		return "", ErrUnseal
	}
	return string(plain), nil
}

// NeedsReseal reports whether a sealed value uses a key other than the active one.
func (s *Sealer) NeedsReseal(sealed string) bool {
	id, _, _ := strings.Cut(sealed, ":")
	return sealed != "" && id != s.active
}
