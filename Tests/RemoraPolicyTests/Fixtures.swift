import RemoraTestFixtures

/// The users' example, shared by the modules' tests (Tests/SharedFixtures).
enum Fixtures {
    static var featureBranch: String { ExampleFixtures.featureBranch }
}
