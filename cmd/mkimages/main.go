// Command mkimages is `make images`: it builds Angzarr Mesh's OCI images
// (the angzarr CLI, the example shop, the filter as a Wasm image) into
// build/images without a container engine. See internal/images.
//
// The images say where they come from: -version (the Makefile passes `git
// describe`), the commit, and its time, which dates every file so that the
// same commit gives the same digests (SOURCE_DATE_EPOCH overrides it).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/images"
)

func main() {
	var o images.Options
	flag.StringVar(&o.Out, "out", "build/images", "directory to write the images to")
	flag.StringVar(&o.Repository, "repository", "ghcr.io/angzarr-mesh", "image repository prefix the tarballs are tagged with")
	flag.StringVar(&o.GOARCH, "goarch", "amd64", "architecture of the binary images")
	flag.StringVar(&o.Meta.Version, "version", "", "version label and tag (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.Meta.Source, "source", "https://"+images.Module, "source label")
	flag.Parse()
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(o *images.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if o.Root, err = git("rev-parse", "--show-toplevel"); err != nil {
		return err
	}
	if o.Meta.Revision, err = git("rev-parse", "HEAD"); err != nil {
		return err
	}
	if o.Meta.Version == "" {
		if o.Meta.Version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return err
		}
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git("log", "-1", "--format=%ct"); err != nil {
			return err
		}
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	o.Meta.Created = time.Unix(secs, 0).UTC()
	results, err := images.Build(ctx, *o)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tOCI LAYOUT\tTARBALL")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Ref, r.Digest, r.Layout, r.Tar)
	}
	return tw.Flush()
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
