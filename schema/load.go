package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// ReadFileSet reads a FileDescriptorSet file as `protoc --include_imports
// --descriptor_set_out` or `buf build -o` writes it, and builds its files
// (well-known types may be left out; see Files).
func ReadFileSet(path string) (*protoregistry.Files, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("descriptor set: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: not a FileDescriptorSet: %w", path, err)
	}
	files, err := Files(&set, WellKnown)
	if err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w (build it with protoc --include_imports)", path, err)
	}
	return files, nil
}

// WellKnown resolves only protobuf's own files (google/protobuf/...) from
// the binary's registry: a set may leave them out, since they never change
// under it, whereas any other file must come from the set itself, or a
// check would compare against this binary's version of it.
var WellKnown protodesc.Resolver = wellKnown{}

type wellKnown struct{}

func (wellKnown) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	if !strings.HasPrefix(p, "google/protobuf/") {
		return nil, protoregistry.NotFound
	}
	return protoregistry.GlobalFiles.FindFileByPath(p)
}

func (wellKnown) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	if !strings.HasPrefix(string(n), "google.protobuf.") {
		return nil, protoregistry.NotFound
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(n)
}

// Files builds the set's files in dependency order, whatever order the set
// lists them in, resolving imports from the set first and then from
// fallback (nil for none; WellKnown, or protoregistry.GlobalFiles for a
// client that may use every type of its binary).
func Files(set *descriptorpb.FileDescriptorSet, fallback protodesc.Resolver) (*protoregistry.Files, error) {
	files := &protoregistry.Files{}
	var chain protodesc.Resolver = files
	if fallback != nil {
		chain = chainResolver{files, fallback}
	}
	pending := slices.Clone(set.GetFile())
	for len(pending) > 0 {
		var next []*descriptorpb.FileDescriptorProto
		var lastErr error
		for _, fdp := range pending {
			if _, err := files.FindFileByPath(fdp.GetName()); err == nil {
				continue // listed twice
			}
			fd, err := protodesc.NewFile(fdp, chain)
			if err != nil {
				next, lastErr = append(next, fdp), err
				continue
			}
			if err := files.RegisterFile(fd); err != nil {
				return nil, err
			}
		}
		if len(next) == len(pending) {
			return nil, lastErr
		}
		pending = next
	}
	return files, nil
}

// chainResolver resolves from the first resolver that knows a file or name.
type chainResolver [2]protodesc.Resolver

func (c chainResolver) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	if fd, err := c[0].FindFileByPath(p); err == nil {
		return fd, nil
	}
	return c[1].FindFileByPath(p)
}

func (c chainResolver) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := c[0].FindDescriptorByName(n); err == nil {
		return d, nil
	}
	return c[1].FindDescriptorByName(n)
}

// Reflect asks a running service's gRPC reflection (v1) for the files that
// define each of the named types and everything they import, and returns
// them as a FileDescriptorSet, with the names the service does not define
// (reflection answered NOT_FOUND). Event types are not part of a service's
// methods (they travel in Any), so they must be named: reflection answers
// for any type registered in the server's binary.
func Reflect(ctx context.Context, conn grpc.ClientConnInterface, names []protoreflect.FullName) (set *descriptorpb.FileDescriptorSet, missing []protoreflect.FullName, err error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reflection: %w", err)
	}
	defer func() { _ = stream.CloseSend() }()
	set = &descriptorpb.FileDescriptorSet{}
	have := map[string]bool{}
	var errNotFound = errors.New("not found")
	ask := func(req *reflectionpb.ServerReflectionRequest, what string) error {
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("reflection: %w", err)
		}
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("reflection: the server closed the stream asking for %s", what)
		}
		if err != nil {
			return fmt.Errorf("reflection: %w", err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			if codes.Code(e.GetErrorCode()) == codes.NotFound {
				return errNotFound
			}
			return fmt.Errorf("reflection: %s: %s", what, e.GetErrorMessage())
		}
		for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fdp := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(b, fdp); err != nil {
				return fmt.Errorf("reflection: %s: a file that does not decode: %w", what, err)
			}
			if !have[fdp.GetName()] {
				have[fdp.GetName()] = true
				set.File = append(set.File, fdp)
			}
		}
		return nil
	}
	for _, n := range names {
		err := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: string(n)}}, string(n))
		if errors.Is(err, errNotFound) {
			missing = append(missing, n)
		} else if err != nil {
			return nil, nil, err
		}
	}
	// A server may answer with a file alone; fetch imports it left out.
	for i := 0; i < len(set.File); i++ {
		for _, dep := range set.File[i].GetDependency() {
			if have[dep] {
				continue
			}
			err := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}}, dep)
			if errors.Is(err, errNotFound) {
				return nil, nil, fmt.Errorf("reflection: the service does not serve %s, which %s imports", dep, set.File[i].GetName())
			} else if err != nil {
				return nil, nil, err
			}
		}
	}
	return set, missing, nil
}

// SetOf is the FileDescriptorSet of files and everything they import,
// each file once, imports before the files that import them: what protoc
// --include_imports writes, from descriptors a binary has compiled in.
func SetOf(files ...protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	return set
}
