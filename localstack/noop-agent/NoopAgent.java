// LocalStack starts DynamoDB Local with `-javaagent:ddb-local-loader-0.1.jar` (its own
// patch lifting the 20-GSI limit, fetched from GitHub, which these machines cannot reach).
// The agent is optional for DynamoDB Local itself, so a jar whose premain does nothing
// stands in for it. localstack/host_install.sh compiles and packs this file.
package fanout.localstack;

public final class NoopAgent {
    private NoopAgent() {}

    public static void premain(String args) {
        // intentionally empty: DynamoDB Local runs unpatched
    }
}
