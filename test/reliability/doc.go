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
//   - fuzzing: every fuzz target of the REST API runs for a bounded time;
//   - failover: two manager replicas elect a leader over one simulated cloud
//     service; the leader is SIGKILLed three times mid-rollout (and started
//     again as the standby): no duplicate machine, all run, and
//     failover_takeover_s is the longest time from a kill to the first status
//     write after the standby took the Lease;
//   - REST API replicas: clients spread over both replicas' APIs, moving to
//     the other on a connection error as a load balancer would, get a 200
//     for every request while each replica is SIGKILLed and restarted;
//   - kube-apiserver restart: kube-apiserver and etcd killed for 10 seconds
//     mid-rollout; the manager (leader-elected) holds its Lease, is not
//     restarted, and the rollout ends with one machine per instance;
//   - simcloud partition: the cloud's service SIGSTOPped for 20 seconds
//     mid-rollout; instances say they are retrying because the cloud does not
//     answer, then all run with no duplicate.
//
// Every check reaches the simulated cloud over HTTP (cmd/simcloud, built
// beside the manager), as the manager reaches a real cloud.
//
// `make test-reliability` runs it; RELIABILITY_N and the *_SECONDS knobs make it short.
package main
