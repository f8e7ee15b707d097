package main

import (
	"github.com/spf13/cobra"
)

// newRootCmd assembles the CLI. Each subcommand lives in its own file, named
// after it, and is added here.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "angzarr",
		Short: "Event sourcing and CQRS delivered by the service mesh",
		Long: `angzarr runs the parts of Angzarr Mesh: the event service, the xDS control
plane, a local proxy that runs the Wasm filter the way Envoy does, and client
verbs to send commands and read events.`,
		SilenceUsage: true,
	}
	root.AddCommand(
		newVersionCmd(),
		newProxyCmd(),
		newEventsvcCmd(),
		newControlplaneCmd(),
		newDLQCmd(),
		newReplayCmd(),
		newDevCmd(),
		newSendCmd(),
		newEventsCmd(),
		newSchemaCmd(),
		newConsoleCmd(),
	)
	return root
}
