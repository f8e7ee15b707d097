package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/internal/client"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
)

// newConsoleCmd is `angzarr console`: the web console.
func newConsoleCmd() *cobra.Command {
	var (
		cfg        console.Config
		tokens     string
		user, role string
		logs       logFlags
		id         clientIdentityFlags
	)
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console: topology, streams, workflows, fan-out and dead letters, live events",
		Long: `console serves a web console for people. It reads everything through the
public gRPC APIs of the event service and the control plane, and changes
nothing except what an operator does on purpose (replay or skip a dead
letter).

Who may do what: --tokens FILE lists "USER TOKEN" lines; without it a token
is made for --user and its login URL printed. --operator and --reader give
users their role (--role is the role of --user); anyone else gets nothing.

  angzarr console                                  # against the local mesh (angzarr dev starts one itself)
  angzarr console --listen 127.0.0.1:8080 --event-service eventsvc:1313 --control-plane controlplane:18000 \
      --tokens /etc/angzarr/console-tokens --operator alice --reader bob`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Logger, err = logs.logger(); err != nil {
				return err
			}
			if cfg.EventService == "" || cfg.ControlPlane == "" {
				if f, err := endpoints.Read(""); err == nil {
					if cfg.EventService == "" {
						cfg.EventService = f.EventService
					}
					if cfg.ControlPlane == "" {
						cfg.ControlPlane = f.ControlPlane
					}
				}
			}
			// The console's own identity towards the event service and the
			// control plane: --cert/--key/--ca, or the local mesh's operator
			// certificate when it runs mTLS.
			dial, err := id.dial()
			if err == nil && dial == nil {
				dial, err = client.DialFor(".angzarr")
			}
			if err != nil {
				return err
			}
			cfg.DialOptions = []grpc.DialOption{dial}
			login := ""
			if tokens != "" {
				if cfg.Tokens, err = console.ReadTokens(tokens); err != nil {
					return err
				}
			} else {
				tok, err := console.NewToken()
				if err != nil {
					return err
				}
				cfg.Tokens = map[string]string{tok: user}
				switch console.Role(role) {
				case console.RoleOperator:
					cfg.Operators = append(cfg.Operators, user)
				case console.RoleReader:
					cfg.Readers = append(cfg.Readers, user)
				default:
					return fmt.Errorf("--role %q: reader or operator", role)
				}
				login = tok
			}
			lis, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			if login != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Angzarr console for %s (%s): %s\n", user, role, console.LoginURL(lis.Addr().String(), login))
			}
			return console.Serve(cmd.Context(), lis, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", console.DefaultListen, "HTTP listen address")
	f.StringVar(&cfg.EventService, "event-service", "", "event service HOST:PORT (default: the local mesh's, from .angzarr/endpoints.json)")
	f.StringVar(&cfg.ControlPlane, "control-plane", "", "control plane xDS HOST:PORT (default: the local mesh's)")
	f.StringVar(&tokens, "tokens", "", `file of "USER TOKEN" lines (default: a token made for --user)`)
	f.StringVar(&user, "user", "admin", "the user of the token made when --tokens is not given")
	f.StringVar(&role, "role", string(console.RoleReader), "the role of --user: reader or operator")
	f.StringArrayVar(&cfg.Operators, "operator", nil, "a user who may replay and skip dead letters; repeatable")
	f.StringArrayVar(&cfg.Readers, "reader", nil, "a user who may read; repeatable")
	f.DurationVar(&cfg.SampleInterval, "sample-interval", console.DefaultSampleInterval, "how often the subscribers' positions are sampled")
	id.add(f)
	logs.add(f)
	return cmd
}
