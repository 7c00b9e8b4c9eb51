import SwiftUI

@main
struct EdgeMLPDemoApp: App {
    @StateObject private var demo = DemoViewModel()

    /// Set by XCTest when the app hosts the unit tests: the UI then stays idle, so nothing it does
    /// competes with the benchmark test for the CPU, GPU or Neural Engine.
    private let hostsTests = ProcessInfo.processInfo.environment["XCTestConfigurationFilePath"] != nil

    var body: some Scene {
        WindowGroup {
            if hostsTests {
                Text("Running tests")
            } else {
                ContentView().environmentObject(demo)
            }
        }
    }
}
