package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/joho/godotenv"
)

// dotEnvFile is read from the working directory, if present, so a developer keeps
// ENCRYPTION_KEYS and DATABASE_URL out of the shell (and out of git: .gitignore lists it).
const dotEnvFile = ".env"

// withDotEnv returns getenv extended with the variables of the .env file at path: a variable the
// environment sets (non-empty) wins, the file fills in the rest. A missing file changes nothing;
// one that cannot be parsed is an error, so a typo is not silently ignored.
func withDotEnv(path string, getenv func(string) string) (func(string) string, error) {
	vals, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return vals[name]
	}, nil
}
