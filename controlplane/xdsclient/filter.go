package xdsclient

import (
	"errors"
	"fmt"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasm "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// Filter is the Wasm filter an ECDS resource carries, unpacked the way a
// proxy applies it: where the module comes from, and the plugin
// configuration. `angzarr proxy --xds` and the tests read ECDS through it.
type Filter struct {
	// Name of the extension config (the filter name in the listener).
	Name string
	// File is the module's local path ("" for a remote module).
	File string
	// URL, SHA256 and URLCluster describe a remote module: where it is,
	// its digest, and the cluster it is fetched through.
	URL, SHA256, URLCluster string
	// RootID and VMID of the plugin.
	RootID, VMID string
	// FailurePolicy is the plugin's failure policy (UNSPECIFIED means
	// Envoy's default, FAIL_CLOSED), and ReloadBackoff the base interval
	// of FAIL_RELOAD's back-off (0: Envoy's default, 1 s).
	FailurePolicy wasm.FailurePolicy
	ReloadBackoff time.Duration
	// AllowOnHeadersStopIteration is the PluginConfig field: a plugin that
	// stops the request headers still gets the body.
	AllowOnHeadersStopIteration bool
	// Configuration is the plugin configuration as the filter receives it
	// (JSON, proxy_on_configure's buffer).
	Configuration []byte
	// Config is Configuration decoded by the filter's own strict decoder.
	Config *config.Config
}

// DecodeFilter unpacks an ECDS resource into the Wasm filter, validating
// it: the type must be the Wasm HTTP filter, ValidateAll must pass, a
// module must be given, and the plugin configuration must be a
// StringValue that the filter's decoder accepts.
func DecodeFilter(tec *core.TypedExtensionConfig) (*Filter, error) {
	if got := tec.GetTypedConfig().GetTypeUrl(); got != WasmTypeURL {
		return nil, fmt.Errorf("extension config %q: type %q, want %q", tec.GetName(), got, WasmTypeURL)
	}
	w := &wasmfilter.Wasm{}
	if err := tec.GetTypedConfig().UnmarshalTo(w); err != nil {
		return nil, fmt.Errorf("extension config %q: %w", tec.GetName(), err)
	}
	if err := w.ValidateAll(); err != nil {
		return nil, fmt.Errorf("extension config %q: %w", tec.GetName(), err)
	}
	pc := w.GetConfig()
	f := &Filter{
		Name:                        tec.GetName(),
		RootID:                      pc.GetRootId(),
		VMID:                        pc.GetVmConfig().GetVmId(),
		FailurePolicy:               pc.GetFailurePolicy(),
		ReloadBackoff:               pc.GetReloadConfig().GetBackoff().GetBaseInterval().AsDuration(),
		AllowOnHeadersStopIteration: pc.GetAllowOnHeadersStopIteration().GetValue(),
	}
	code := pc.GetVmConfig().GetCode()
	switch {
	case code.GetLocal().GetFilename() != "":
		f.File = code.GetLocal().GetFilename()
	case code.GetRemote() != nil:
		f.URL = code.GetRemote().GetHttpUri().GetUri()
		f.SHA256 = code.GetRemote().GetSha256()
		f.URLCluster = code.GetRemote().GetHttpUri().GetCluster()
	default:
		return nil, fmt.Errorf("extension config %q: %w", tec.GetName(), errors.New("the Wasm VM has no module (local file or remote source)"))
	}
	sv := &wrapperspb.StringValue{}
	if err := pc.GetConfiguration().UnmarshalTo(sv); err != nil {
		return nil, fmt.Errorf("extension config %q: plugin configuration is not a StringValue: %w", tec.GetName(), err)
	}
	f.Configuration = []byte(sv.GetValue())
	cfg, err := config.Decode(f.Configuration)
	if err != nil {
		return nil, fmt.Errorf("extension config %q: %w", tec.GetName(), err)
	}
	f.Config = cfg
	return f, nil
}
