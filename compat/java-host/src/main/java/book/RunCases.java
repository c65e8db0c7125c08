package book;

import com.dylibso.chicory.wasm.Parser;
import io.roastedroot.proxywasm.LogLevel;
import io.roastedroot.proxywasm.SharedData;
import io.roastedroot.proxywasm.SimpleSharedDataHandler;
import io.roastedroot.proxywasm.StartException;
import io.roastedroot.proxywasm.WasmException;
import io.roastedroot.proxywasm.internal.Action;
import io.roastedroot.proxywasm.internal.ArrayBytesProxyMap;
import io.roastedroot.proxywasm.internal.ChainedHandler;
import io.roastedroot.proxywasm.internal.Handler;
import io.roastedroot.proxywasm.internal.HttpContext;
import io.roastedroot.proxywasm.internal.ProxyMap;
import io.roastedroot.proxywasm.internal.ProxyWasm;
import io.roastedroot.proxywasm.internal.StreamType;
import io.roastedroot.proxywasm.internal.WasmResult;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Loads a module into proxy-wasm-java-host, configures it, and sends it
 * each case of a cases file, printing one PASS or FAIL line per case.
 *
 * <p>Usage: RunCases MODULE.wasm CONFIGURATION_FILE CASES_FILE
 *
 * <p>The cases file, written by the compat tool from a step's
 * tests/in_process/cases.rs, has one line per item: {@code case NAME},
 * {@code request METHOD PATH} (GET /api/users when absent),
 * {@code header NAME HEX_VALUE}, {@code body HEX_PIECE} (one line per
 * piece of the body, as it arrives), {@code trailers} (the body ends with
 * trailers), then {@code expect refused STATUS TEXT}, {@code expect
 * passed} (on to the upstream with x-auth-status: valid) or {@code expect
 * forwarded} (on to the upstream with its body unchanged). A case this
 * library cannot send prints {@code CANNOT  NAME: why}.
 *
 * <p>A call the plugin makes is answered here as the step's own stand-ins
 * answer it: an HTTP call as step 3's auth service ({"valid":true} for the
 * body {"key":"<a valid key>"}), a gRPC call as a rate limit service with
 * room left (OK). Shared data is the library's SimpleSharedDataHandler.
 */
public final class RunCases {
    /** The plugin's log, printed at the end. */
    static final List<String> LOG = new ArrayList<>();

    /** The valid keys of step 3's auth service (its envoy.yaml). */
    static final List<String> AUTH_SERVICE_KEYS = List.of("key-abc123", "key-def456", "key-ghi789");

    /** A RateLimitResponse with room left: OK, 5 per minute, 4 left, reset in 42 s. */
    static final byte[] RATE_LIMIT_OK = {
        0x08, 1, 0x12, 14, 0x08, 1, 0x12, 4, 0x08, 5, 0x10, 2, 0x18, 4, 0x22, 2, 0x08, 42
    };

    /** What the root context needs: the configuration, shared data, and the log. */
    static final class Root extends ChainedHandler {
        final byte[] configuration;
        final SimpleSharedDataHandler sharedData = new SimpleSharedDataHandler();

        Root(byte[] configuration) {
            this.configuration = configuration;
        }

        @Override
        protected Handler next() {
            return Handler.DEFAULT;
        }

        @Override
        public byte[] getPluginConfig() {
            return configuration;
        }

        @Override
        public void log(LogLevel level, String message) {
            LOG.add(level + " " + message);
        }

        @Override
        public SharedData getSharedData(String key) throws WasmException {
            return sharedData.getSharedData(key);
        }

        @Override
        public WasmResult setSharedData(String key, byte[] value, int cas) {
            return sharedData.setSharedData(key, value, cas);
        }
    }

    /** One request: its headers, and the answer the plugin sends. */
    static final class Request extends ChainedHandler {
        final Root root;
        final ArrayBytesProxyMap headers = new ArrayBytesProxyMap();
        Integer status;
        String body = "";
        boolean resumed;
        final List<byte[]> pieces = new ArrayList<>();
        final ByteArrayOutputStream sent = new ByteArrayOutputStream();
        boolean trailers;
        byte[] held = new byte[0];
        final ByteArrayOutputStream forwarded = new ByteArrayOutputStream();
        byte[] httpCallBody;
        boolean grpcCalled;

        Request(Root root) {
            this.root = root;
        }

        @Override
        protected Handler next() {
            return root;
        }

        @Override
        public ProxyMap getHttpRequestHeaders() {
            return headers;
        }

        @Override
        public WasmResult sendHttpResponse(
                int statusCode, byte[] details, byte[] body, ProxyMap headers, int grpcStatus) {
            this.status = statusCode;
            this.body = new String(body, StandardCharsets.UTF_8);
            return WasmResult.OK;
        }

        @Override
        public byte[] getHttpRequestBody() {
            return held;
        }

        @Override
        public WasmResult setHttpRequestBody(byte[] body) {
            held = body;
            return WasmResult.OK;
        }

        @Override
        public WasmResult setAction(StreamType stream, Action action) {
            resumed |= stream == StreamType.REQUEST && action == Action.CONTINUE;
            return WasmResult.OK;
        }

        @Override
        public int dispatchHttpCall(
                String upstream, ProxyMap headers, byte[] body, ProxyMap trailers, int timeout) {
            httpCallBody = body;
            return 1;
        }

        @Override
        public int grpcCall(
                String upstream,
                String service,
                String method,
                ProxyMap metadata,
                byte[] message,
                int timeout) {
            grpcCalled = true;
            return 1;
        }
    }

    public static void main(String[] args) throws Exception {
        var module = Parser.parse(Path.of(args[0]));
        var root = new Root(Files.readAllBytes(Path.of(args[1])));
        ProxyWasm wasm;
        try {
            wasm = ProxyWasm.builder().withPluginHandler(root).build(module);
        } catch (StartException | RuntimeException e) {
            System.out.println("NOT LOADED  " + e);
            printLog();
            System.exit(2);
            return;
        }
        int failed = 0;
        List<String> lines = Files.readAllLines(Path.of(args[2]), StandardCharsets.UTF_8);
        Request request = null;
        String name = "";
        for (String line : lines) {
            String[] parts = line.split(" ", 2);
            switch (parts[0]) {
                case "case" -> {
                    name = parts[1];
                    request = new Request(root);
                }
                case "request" -> {
                    String[] request_line = parts[1].split(" ", 2);
                    request.headers.add(":method", request_line[0]);
                    request.headers.add(":path", request_line[1]);
                }
                case "body" -> {
                    byte[] piece = HexFormat.of().parseHex(parts[1]);
                    request.pieces.add(piece);
                    request.sent.writeBytes(piece);
                }
                case "trailers" -> request.trailers = true;
                case "header" -> {
                    String[] header = parts[1].split(" ", 2);
                    byte[] value = header.length > 1 ? HexFormat.of().parseHex(header[1]) : new byte[0];
                    request.headers.add(header[0], value);
                }
                case "expect" -> {
                    if (request.headers.get(":method") == null) {
                        request.headers.add(":method", "GET");
                        request.headers.add(":path", "/api/users");
                    }
                    if (request.trailers) {
                        // HttpContext calls the request's headers and body
                        // callbacks; it has no call for its trailers.
                        System.out.println(
                                "CANNOT  " + name + ": no way to deliver request trailers");
                        continue;
                    }
                    String verdict = judge(wasm, request, parts[1]);
                    if (verdict == null) {
                        System.out.println("PASS  " + name);
                    } else {
                        System.out.println("FAIL  " + name + ": " + verdict);
                        failed++;
                    }
                }
                default -> throw new IllegalArgumentException("cases file: " + line);
            }
        }
        printLog();
        wasm.close();
        System.exit(failed == 0 ? 0 : 1);
    }

    /** Sends `request`; null when the answer is what `expected` says, else what went wrong. */
    static String judge(ProxyWasm wasm, Request request, String expected) {
        Action action;
        try (HttpContext context = wasm.createHttpContext(request)) {
            boolean bodyless = request.pieces.isEmpty();
            action = context.callOnRequestHeaders(bodyless);
            boolean going = request.status == null && action == Action.CONTINUE;
            for (int n = 0; going && n < request.pieces.size(); n++) {
                // What Envoy does: the body it holds grows by each piece;
                // Continue passes it on, Pause keeps holding it.
                byte[] piece = request.pieces.get(n);
                byte[] grown = new byte[request.held.length + piece.length];
                System.arraycopy(request.held, 0, grown, 0, request.held.length);
                System.arraycopy(piece, 0, grown, request.held.length, piece.length);
                request.held = grown;
                Action bodyAction = context.callOnRequestBody(n + 1 == request.pieces.size());
                going = request.status == null;
                if (going && bodyAction == Action.CONTINUE) {
                    request.forwarded.writeBytes(request.held);
                    request.held = new byte[0];
                }
                action = bodyAction;
            }
            if (request.httpCallBody != null) {
                String sent = new String(request.httpCallBody, StandardCharsets.UTF_8);
                boolean valid = AUTH_SERVICE_KEYS.stream()
                        .anyMatch(key -> sent.equals("{\"key\":\"" + key + "\"}"));
                wasm.sendHttpCallResponse(
                        1,
                        Map.of(":status", valid ? "200" : "403"),
                        Map.of(),
                        (valid ? "{\"valid\":true}" : "{\"valid\":false}")
                                .getBytes(StandardCharsets.UTF_8));
            }
            if (request.grpcCalled) {
                wasm.sendGrpcReceive(1, RATE_LIMIT_OK);
            }
        } catch (RuntimeException e) {
            return "the VM failed: " + e;
        }
        String got = request.status != null
                ? "refused " + request.status + " " + request.body
                : action == Action.CONTINUE || request.resumed
                        ? "passed " + authStatus(request)
                        : "paused";
        if (expected.equals("forwarded")) {
            boolean whole = request.status == null
                    && request.held.length == 0
                    && java.util.Arrays.equals(request.forwarded.toByteArray(), request.sent.toByteArray());
            return whole ? null : "expected the body forwarded unchanged, got " + got;
        }
        if (expected.equals("passed")) {
            return got.equals("passed [valid]") ? null : "expected passed [valid], got " + got;
        }
        String[] refused = expected.split(" ", 3);
        boolean ok = request.status != null
                && request.forwarded.size() == 0
                && request.status == Integer.parseInt(refused[1])
                && request.body.contains(refused.length > 2 ? refused[2] : "");
        return ok ? null : "expected " + expected + ", got " + got;
    }

    /** The values of x-auth-status the backend would see. */
    static String authStatus(Request request) {
        List<String> values = new ArrayList<>();
        for (var entry : request.headers.entries()) {
            if (entry.getKey().equalsIgnoreCase("x-auth-status")) {
                values.add(entry.getValue());
            }
        }
        return values.toString();
    }

    static void printLog() {
        for (String line : LOG) {
            System.out.println("LOG  " + line);
        }
    }
}
