package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"rtbshopify/config"
	"rtbshopify/models"
)

// rotateKeys re-seals every stored secret under the first key of
// ENCRYPTION_KEYS (rotate-keys), or with --check only counts what is still
// sealed with another key and fails if anything is.
func rotateKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rotate-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "only report how many secrets are still sealed with another key; exit 1 if any")
	batch := fs.Int("batch", 100, "rows read per batch")
	pause := fs.Duration("pause", 0, "pause between batches (e.g. 100ms) to spare a busy database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("rotate-keys: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(getenv, config.ForMigrate)
	if err != nil {
		return err
	}
	if len(cfg.EncryptionKeys) == 0 {
		return fmt.Errorf("invalid configuration: %w", &config.FieldError{Var: "ENCRYPTION_KEYS",
			Msg: "is required: the new key first, then every key still in use"})
	}
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	log := newLogger(cfg, stderr)
	db, err := models.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer models.Close(db)
	if err := models.CheckSchema(ctx, db); err != nil {
		return err
	}

	if *check {
		u, err := models.CountKeys(ctx, db, sealer, 0)
		if err != nil {
			return err
		}
		printUsage(stdout, u)
		return usageError(u)
	}

	fmt.Fprintf(stdout, "re-sealing stored secrets under %s\n", sealer.ActiveKey())
	rep, rerr := models.RotateKeys(ctx, db, sealer, models.RotateOptions{BatchSize: *batch, Pause: *pause, Log: log})
	for _, c := range rep.Columns {
		fmt.Fprintf(stdout, "  %-42s %6d resealed %6d already under %s\n", c.Label, c.Resealed, c.Current, sealer.ActiveKey())
	}
	fmt.Fprintf(stdout, "  %-42s %6d\n", "rows changed by the app meanwhile (re-read)", rep.Raced)
	for _, u := range rep.Unreadable {
		fmt.Fprintf(stdout, "  cannot open %s\n", u)
	}
	if rerr != nil {
		return fmt.Errorf("rotate-keys: %w", rerr)
	}
	// A replica still sealing with an old first key may have written after
	// its row was passed: say so rather than report success.
	u, err := models.CountKeys(ctx, db, sealer, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "resealed %d secrets; %d still under another key\n", rep.Resealed(), u.Stale())
	return usageError(u)
}

func printUsage(w io.Writer, u models.KeyUsage) {
	if len(u.ByKey) == 0 {
		fmt.Fprintln(w, "no stored secrets")
	}
	for _, id := range u.Keys() {
		note := ""
		if id == u.Active {
			note = " (the first key)"
		}
		fmt.Fprintf(w, "  sealed under %s%s: %d\n", id, note, u.ByKey[id])
	}
}

var errStale = errors.New("stored secrets are still sealed with another key than the first of ENCRYPTION_KEYS; run rotate-keys (and make sure every replica runs with the new ENCRYPTION_KEYS)")

func usageError(u models.KeyUsage) error {
	if u.Unknown > 0 {
		return fmt.Errorf("%d %w: put the key back into ENCRYPTION_KEYS", u.Unknown, models.ErrUnreadableSecrets)
	}
	if n := u.Stale(); n > 0 {
		return fmt.Errorf("%d %w", n, errStale)
	}
	return nil
}
