// Command reliability proves, on the real local control plane, what users
// trust the operator with, and prints one `RELIABILITY <name> <value>` line
// per figure; it exits non-zero when a check fails:
//
//   - crash safety: the manager is killed with SIGKILL three times during a
//     rollout and restarted, each time with instances in PROVISIONING or
//     STAGING; no instance gets a second machine and all run;
//   - faults: the simulated cloud fails and stalls calls during a rollout;
//     all instances still run, and deleting them leaks no machine;
//   - hostile clients: many concurrent clients, a tenth of them with bad,
//     expired or forged tokens and malformed paths and bodies, get no 5xx and
//     no answer outside the error envelope; every kind of attack is sent and
//     answered as it must be (the JWTs are signed by an OIDC issuer the run
//     starts and the API trusts, so each is refused for its one fault);
//   - fuzzing: every fuzz target of the REST API runs for a bounded time.
//
// `make test-reliability` runs it; RELIABILITY_N and the *_SECONDS knobs make it short.
package main
