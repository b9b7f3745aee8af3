"""Small pure helpers both deployables use (the agent and the controller share nothing else but
`protos`): no I/O, no imports of `edge_agent`, `controller` or `provisioning`."""
