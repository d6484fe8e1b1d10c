import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.action.admin.cluster.health.ClusterHealthResponse;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch for esproxy's tests, run in its own JVM.
 *
 * <p>Usage: {@code TestOpenSearchNode <home-dir> <http-port> [--exit-on-stdin-eof]} (port 0 = any
 * free port). Data and logs live under the home dir; the bound port is written to
 * {@code <home>/logs/http.ports}, and the URL is printed on stdout once the cluster is at least
 * yellow. SIGTERM/SIGINT close the node; so does EOF on stdin with the flag.
 */
public final class TestOpenSearchNode {

    /** Node's constructor that takes classpath plugins is protected, hence the subclass. */
    private static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Environment env) {
            super(env, plugins(), true);
        }
    }

    /**
     * Netty and the common analyzers, plus the k-NN plugin (knn_vector fields, Lucene engine only:
     * its native engines are not in the Maven Central zip) when scripts/setup-opensearch put its
     * jars on the classpath. It is loaded by name because it is not on the compile classpath.
     */
    private static List<Class<? extends Plugin>> plugins() {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        plugins.add(Netty4Plugin.class);
        plugins.add(CommonAnalysisPlugin.class);
        try {
            plugins.add(Class.forName(KNN_PLUGIN).asSubclass(Plugin.class));
        } catch (ClassNotFoundException absent) {
            System.err.println("k-NN plugin not on the classpath; knn_vector fields unavailable");
        }
        return plugins;
    }

    private static final String KNN_PLUGIN = "org.opensearch.knn.plugin.KNNPlugin";

    public static void main(String[] args) throws Exception {
        boolean exitOnEof = args.length == 3 && args[2].equals("--exit-on-stdin-eof");
        if (args.length != 2 && !exitOnEof) {
            System.err.println(
                "usage: TestOpenSearchNode <home-dir> <http-port> [--exit-on-stdin-eof]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        // Empty plugins/modules dirs: the node scans them; empty means no jar-hell check either.
        for (String dir : List.of("config", "plugins", "modules", "data", "logs")) {
            Files.createDirectories(home.resolve(dir));
        }
        // A reused home keeps the last run's ports file; readers must only ever see this run's.
        Files.deleteIfExists(home.resolve("logs/http.ports"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "esproxy-test")
            .put("node.name", "esproxy-test-node")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", "0")
            .put("node.portsfile", true)
            // Test machines may have little free disk; don't let watermarks block allocation.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // Real-memory accounting trips spuriously with a small heap.
            .put("indices.breaker.total.use_real_memory", false)
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), home.resolve("config"), () -> "esproxy-test-node");
        Node node = new ClasspathPluginNode(env);

        CountDownLatch closed = new CountDownLatch(1);
        // The JVM runs this on SIGTERM/SIGINT; without it the node would die without flushing.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "opensearch-shutdown"));

        if (exitOnEof) {
            // The parent holds our stdin open; EOF means it died without stopping us (e.g. a
            // SIGKILLed test run), so don't outlive it. System.exit runs the shutdown hook.
            Thread watcher = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // Ignore input; only EOF matters.
                    }
                } catch (IOException ignored) {
                    // A broken stdin means the parent is gone, too.
                }
                System.exit(0);
            }, "parent-watch");
            watcher.setDaemon(true);
            watcher.start();
        }
        node.start();
        ClusterHealthResponse health = node.client().admin().cluster().prepareHealth()
            .setWaitForYellowStatus().setTimeout("120s").get();
        if (health.isTimedOut()) {
            throw new IllegalStateException("cluster not yellow in time: " + health.getStatus());
        }
        int port = node.injector().getInstance(HttpServerTransport.class)
            .boundAddress().publishAddress().getPort();
        System.out.println("http://127.0.0.1:" + port);
        System.out.flush();
        // Every OpenSearch/Netty thread is a daemon: keep main alive or the JVM exits.
        closed.await();
    }
}
