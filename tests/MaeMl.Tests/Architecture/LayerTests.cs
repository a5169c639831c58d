using NetArchTest.Rules;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.Architecture;

/// <summary>
/// The folders of src/MaeMl are layers (docs/architecture.md): a folder may use the folders below it, never one above or beside
/// it on the same level. Checked on the compiled IL with NetArchTest (every type reference, method bodies included), so a
/// back-edge anywhere fails here.
/// </summary>
public sealed class LayerTests(ITestOutputHelper output)
{
    /// <summary>Bottom to top. A folder may depend on folders of lower levels only.</summary>
    static readonly string[][] Levels =
    [
        ["Files", "Native"],
        ["Model", "Data"],
        ["Checkpoints", "Evaluation", "Visualization"],
        ["Interop"],
        ["Training"],
        ["Onnx"],
        ["Detection", "Segmentation", "Pretrained"],
        ["MLNet"],
    ];

    [Fact]
    public void NoFolderDependsOnAFolderAboveOrBesideIt()
    {
        var assembly = typeof(MaeMl.Model.MaeConfig).Assembly;
        var known = Levels.SelectMany(l => l).ToHashSet();
        var folders = Types.InAssembly(assembly).GetTypes().Select(t => t.Namespace ?? "").Where(n => n.StartsWith("MaeMl."))
            .Select(n => n.Split('.')[1]).Distinct().ToList();
        Assert.All(folders, f => Assert.True(known.Contains(f), $"folder {f} has no layer in docs/architecture.md (add it to LayerTests.Levels)"));

        var violations = new List<string>();
        for (int level = 0; level < Levels.Length; level++)
        foreach (var folder in Levels[level])
        {
            var forbidden = Levels.Skip(level).SelectMany(l => l).Where(f => f != folder).Select(f => $"MaeMl.{f}").ToArray();
            var result = Types.InAssembly(assembly).That().ResideInNamespace($"MaeMl.{folder}")
                .ShouldNot().HaveDependencyOnAny(forbidden).GetResult();
            if (!result.IsSuccessful)
                violations.AddRange(result.FailingTypeNames.Select(t => $"{t} (in {folder}) uses a folder at its level or above: one of {string.Join(", ", forbidden.Select(f => f[6..]))}"));
        }
        foreach (var v in violations) output.WriteLine(v);
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void TheLibraryDoesNotDependOnTheCommandLine()
    {
        var result = Types.InAssembly(typeof(MaeMl.Model.MaeConfig).Assembly).ShouldNot().HaveDependencyOn("MaeMl.Cli").GetResult();
        Assert.True(result.IsSuccessful, string.Join(", ", result.FailingTypeNames ?? []));
    }
}
