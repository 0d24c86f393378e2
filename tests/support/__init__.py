"""What tests, benches (bench/*.py) and the demo (scripts/demo.py) share, one purpose a module.

- waiting: free_port, poll_until, wait_for
- constants: the device, its neighbour, their tokens, the operator, the dashboard user
- files: TOML values, private (0600) files, bump_mtime
- processes: the installed programs (program, run_program) and ChildProcess, a program in
  its own process group with its output in a log; file_size_limit (a full disk for one
  program) and child_pids
- receiver: a real `beam-receiver serve`: tokens file, receiver.toml, ReceiverProcess,
  configure_receiver, stored_count, write_lock_held (another process holding the write lock)
- agent: a real `beam-agent run`: write_agent_config, AgentProcess
- app: the receiver in this process behind Flask's test client (Receiver, build_receiver)
- postgres: a real PostgreSQL 15 server in a temporary directory on a free loopback port
  (start_postgres, running_postgres), fresh databases copied from a migrated template
- dashboard: the dashboard's login and logout forms through Flask's test client
- readings: a valid reading, the payload check drivers must pass, RFC 3339 both ways
- responses: the receiver's error objects and Prometheus metrics text
- receiver_double: a fault-injecting stand-in for the receiver, in this process
- devices: a fake serial device (a pty) and a thread running a streaming driver
- mqtt: a real Mosquitto broker on a free loopback port (password file, TLS), publish
- faults: the fault tests' accounting and result lines
- fuzz_campaign: the schemathesis campaign against a real receiver

Tests import these modules (never conftest.py files or other test modules); the receiver's
and the app's modules need Flask, so the agent's tests (also run on Python 3.9 with the
agent's dependencies only) use the others. Benches and the demo put the repository root on
sys.path first.
"""
