import Config
import Foundation
import Testing

/// deploy/: every YAML file parses, the Kubernetes manifests fit together (the Deployment's
/// probes, Secret references, ConfigMap mount and Service ports point at things that exist),
/// and every embedded idemproxy config passes the real `idemproxy check-config`.
@Suite struct KubernetesManifestTests {
    static let kubernetesDirectory = "deploy/kubernetes"
    /// What check-config is given, as a filled-in Secret would provide it.
    static let environment = ["REDIS_URL": "redis://:s3cret@redis:6379/0", "IDEMPROXY_ADMIN_TOKEN": "4f9c2e7a1b8d3f60a5e9c7b2d1f8e3a6"]

    /// Every `.yaml`/`.yml` file under deploy/, relative to the repository root.
    static func yamlFiles() throws -> [String] {
        let base = repositoryRoot + "/deploy"
        let paths = try FileManager.default.subpathsOfDirectory(atPath: base)
        return paths.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.map { "deploy/" + $0 }.sorted()
    }

    /// The Kubernetes objects in deploy/kubernetes, by kind (one of each is expected).
    static func objects() throws -> [String: Tree] {
        var byKind: [String: Tree] = [:]
        for file in try yamlFiles() where file.hasPrefix(kubernetesDirectory + "/") {
            for document in try yamlDocuments(try repositoryFile(file), name: file) {
                let object = Tree(document)
                guard let kind = object["kind"].string else { continue }
                byKind[kind] = object
            }
        }
        return byKind
    }

    static func deploymentSpec() throws -> Tree {
        try #require(objects()["Deployment"])["spec", "template", "spec"]
    }

    static func proxyContainer() throws -> Tree {
        try #require(deploymentSpec()["containers"].named("idemproxy"))
    }

    /// The idemproxy.yaml the ConfigMap embeds.
    static func embeddedConfig() throws -> String {
        try #require(objects()["ConfigMap"]?["data", "idemproxy.yaml"].string)
    }

    /// The container port a probe or Service names, by name or number.
    static func containerPort(_ reference: Tree, in container: Tree) -> Int? {
        if let number = reference.int { return number }
        return container["ports"].list.first { $0["name"].string == reference.string }?["containerPort"].int
    }

    @Test func everyYAMLFileUnderDeployParses() throws {
        let files = try Self.yamlFiles()
        #expect(files.count >= 7, "\(files)")
        for file in files {
            let documents = try yamlDocuments(try repositoryFile(file), name: file)
            #expect(!documents.isEmpty, "\(file) has no document")
            for document in documents {
                #expect(document is [String: Any], "\(file): a document is not a mapping")
            }
        }
    }

    @Test func manifestsAreTheExpectedKinds() throws {
        var kinds: [String] = []
        for file in try Self.yamlFiles() where file.hasPrefix(Self.kubernetesDirectory + "/") {
            for document in try yamlDocuments(try repositoryFile(file), name: file) {
                let object = Tree(document)
                #expect(object["apiVersion"].string != nil, "\(file) has no apiVersion")
                kinds.append(try #require(object["kind"].string, "\(file) has no kind"))
            }
        }
        #expect(kinds.sorted() == ["ConfigMap", "Deployment", "Kustomization", "Secret", "Service"])
    }

    @Test func kustomizationListsEveryManifest() throws {
        let kustomization = try #require(try Self.objects()["Kustomization"])
        let listed = Set(kustomization["resources"].list.compactMap(\.string))
        let files = try Self.yamlFiles()
            .filter { $0.hasPrefix(Self.kubernetesDirectory + "/") && !$0.hasSuffix("/kustomization.yaml") }
            .map { String($0.dropFirst(Self.kubernetesDirectory.count + 1)) }
        #expect(listed == Set(files))
    }

    @Test func deploymentRunsTheProxyBesideTheAPI() throws {
        let spec = try Self.deploymentSpec()
        let names = spec["containers"].list.compactMap { $0["name"].string }
        #expect(names.count == 2 && names.contains("idemproxy"), "\(names)")
        let proxy = try Self.proxyContainer()
        #expect(proxy["image"].string?.isEmpty == false)
        #expect(Self.containerPort(Tree("proxy"), in: proxy) == 8080)
        #expect(Self.containerPort(Tree("admin"), in: proxy) == 9090)
        // The API listens where the embedded config's upstream points.
        let config = try ConfigLoader.parse(yaml: try Self.embeddedConfig(), fileName: "idemproxy.yaml", environment: Self.environment)
        #expect(config.upstream.host == "127.0.0.1" && config.upstream.port == 3000)
        let api = try #require(spec["containers"].list.first { $0["name"].string != "idemproxy" })
        #expect(api["ports"].list.contains { $0["containerPort"].int == 3000 })
    }

    @Test func probesAskTheAdminPort() throws {
        let proxy = try Self.proxyContainer()
        let config = try ConfigLoader.parse(yaml: try Self.embeddedConfig(), fileName: "idemproxy.yaml", environment: Self.environment)
        let admin = try #require(config.admin.listen)
        // The kubelet probes the pod's IP, so the admin endpoint must listen beyond loopback.
        #expect(admin.host == "0.0.0.0")
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = proxy[probe, "httpGet"]
            #expect(get["path"].string == path, "\(probe)")
            #expect(Self.containerPort(get["port"], in: proxy) == Int(admin.port), "\(probe)")
        }
    }

    @Test func secretsComeFromTheSecret() throws {
        let objects = try Self.objects()
        let secret = try #require(objects["Secret"])
        let secretName = try #require(secret["metadata", "name"].string)
        let keys = Set(try #require(secret["stringData"].map).keys)
        let env = try Self.proxyContainer()["env"]
        for variable in ["REDIS_URL", "IDEMPROXY_ADMIN_TOKEN"] {
            let reference = try #require(env.named(variable), "\(variable) is not set")["valueFrom", "secretKeyRef"]
            #expect(reference["name"].string == secretName, "\(variable)")
            let key = try #require(reference["key"].string, "\(variable)")
            #expect(keys.contains(key), "\(variable): the Secret has no \(key)")
            // The embedded config takes the value from that variable.
            #expect(try Self.embeddedConfig().contains("${\(variable)}"), "\(variable)")
        }
    }

    @Test func configMapIsMountedWhereTheProxyReadsItsConfig() throws {
        let spec = try Self.deploymentSpec()
        let proxy = try Self.proxyContainer()
        let configMapName = try #require(try Self.objects()["ConfigMap"]?["metadata", "name"].string)
        let volume = try #require(spec["volumes"].list.first { $0["configMap", "name"].string == configMapName })
        let volumeName = try #require(volume["name"].string)
        let mount = try #require(proxy["volumeMounts"].named(volumeName))
        let mountPath = try #require(mount["mountPath"].string)
        // `--config` in the args, or the image's default (/etc/idemproxy/idemproxy.yaml).
        let args = proxy["args"].list.compactMap(\.string)
        let configPath = args.firstIndex(of: "--config").map { args[$0 + 1] } ?? "/etc/idemproxy/idemproxy.yaml"
        #expect(configPath == mountPath + "/idemproxy.yaml")
    }

    @Test func resourcesAndShutdownFitTheConfig() throws {
        let spec = try Self.deploymentSpec()
        let proxy = try Self.proxyContainer()
        for section in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                #expect(proxy["resources", section, resource].text != nil, "\(section).\(resource)")
            }
        }
        let config = try ConfigLoader.parse(yaml: try Self.embeddedConfig(), fileName: "idemproxy.yaml", environment: Self.environment)
        let grace = try #require(spec["terminationGracePeriodSeconds"].int)
        #expect(Duration.seconds(grace) > config.shutdownGrace)
        #expect(config.workers == 1, "workers: auto would start a loop per core of the node")
    }

    @Test func containersAreLockedDown() throws {
        let spec = try Self.deploymentSpec()
        #expect(spec["securityContext", "runAsNonRoot"].bool == true)
        for container in spec["containers"].list {
            let name = container["name"].string ?? "?"
            let context = container["securityContext"]
            #expect(context["readOnlyRootFilesystem"].bool == true, "\(name)")
            #expect(context["allowPrivilegeEscalation"].bool == false, "\(name)")
            #expect(context["capabilities", "drop"].list.compactMap(\.string) == ["ALL"], "\(name)")
        }
        // runAsNonRoot needs a numeric user to verify: the one the image runs as.
        #expect(try Self.proxyContainer()["securityContext", "runAsUser"].int == 10001)
    }

    @Test func serviceExposesOnlyTheProxyPort() throws {
        let objects = try Self.objects()
        let service = try #require(objects["Service"])
        let ports = service["spec", "ports"].list
        #expect(ports.count == 1)
        #expect(ports.first?["port"].int == 8080)
        let proxy = try Self.proxyContainer()
        #expect(ports.first.flatMap { Self.containerPort($0["targetPort"], in: proxy) } == 8080)
        let selector = try #require(service["spec", "selector"].map as? [String: String])
        let labels = try #require(objects["Deployment"]?["spec", "template", "metadata", "labels"].map as? [String: String])
        #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value })
    }

    @Test func prometheusScrapesTheAdminPort() throws {
        let annotations = try #require(try Self.objects()["Deployment"])["spec", "template", "metadata", "annotations"]
        #expect(annotations["prometheus.io/scrape"].string == "true")
        #expect(annotations["prometheus.io/port"].string == "9090")
        #expect(annotations["prometheus.io/path"].string == "/metrics")
    }

    @Test func embeddedConfigPassesCheckConfig() throws {
        let result = try checkConfig(try Self.embeddedConfig(), environment: Self.environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("configuration OK"))
        #expect(result.stdout.contains("store redis"))
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    /// The example Secret holds no token anyone could guess (it used to say `change-me` for an
    /// admin port on 0.0.0.0): applied as is, /records is refused and check-config says so.
    @Test func theSecretExampleShipsNoWorkingToken() throws {
        let stringData = try #require(try Self.objects()["Secret"]?["stringData"].map)
        #expect(stringData["IDEMPROXY_ADMIN_TOKEN"] as? String == "")
        var environment = Self.environment
        environment["IDEMPROXY_ADMIN_TOKEN"] = ""
        let result = try checkConfig(try Self.embeddedConfig(), environment: environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("admin.token is empty"), "\(result.stderr)")
    }

    /// A token someone filled in too short (as `change-me` was) is warned about.
    @Test func aShortTokenIsWarnedAbout() throws {
        var environment = Self.environment
        environment["IDEMPROXY_ADMIN_TOKEN"] = "change-me"
        let result = try checkConfig(try Self.embeddedConfig(), environment: environment)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("admin.token is shorter than 16 characters"), "\(result.stderr)")
    }

    @Test func embeddedConfigNeedsItsSecrets() throws {
        for variable in ["REDIS_URL", "IDEMPROXY_ADMIN_TOKEN"] {
            var environment = Self.environment
            environment[variable] = nil
            let result = try checkConfig(try Self.embeddedConfig(), environment: environment)
            #expect(result.status == 2, "\(variable) unset: \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains(variable), "\(result.stderr)")
        }
    }

    /// Without `admin.token`, `/records` on 0.0.0.0 answers 403 to everyone: the config is still
    /// valid (exit 0), and SPEC §8 has check-config warn about it on stderr.
    @Test func embeddedConfigWithoutTheTokenIsStillValid() throws {
        let lines = try Self.embeddedConfig().split(separator: "\n", omittingEmptySubsequences: false)
        let withoutToken = lines.filter { !$0.contains("token: ${IDEMPROXY_ADMIN_TOKEN}") }
        #expect(withoutToken.count == lines.count - 1)
        let result = try checkConfig(withoutToken.joined(separator: "\n"), environment: ["REDIS_URL": Self.environment["REDIS_URL"]!])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("warning"), "\(result.stderr)")
        #expect(result.stderr.contains("admin.token"), "\(result.stderr)")
    }
}
