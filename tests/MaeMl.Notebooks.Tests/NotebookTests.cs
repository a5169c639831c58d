using System.Reflection;
using System.Text.Json;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Notebooks.Tests;

/// <summary>
/// Executes every C# cell of every notebook in samples/notebooks with the .NET Interactive C# kernel, in order, as a user
/// would; a cell that fails to compile or throws fails the test. The notebooks' <c>#r "nuget: MaeMl"</c> lines are
/// replaced by references to the assemblies built here, so the test checks this checkout's code.
/// </summary>
public class NotebookTests(ITestOutputHelper output)
{
    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MaeMl.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (MaeMl.sln) not found above " + AppContext.BaseDirectory);
    }

    public static IEnumerable<object[]> Notebooks() =>
        Directory.GetFiles(Path.Combine(RepoRoot(), "samples", "notebooks"), "*.ipynb").Order().Select(p => new object[] { Path.GetFileName(p) });

    [Theory]
    [MemberData(nameof(Notebooks))]
    public async Task EveryCellRuns(string notebook)
    {
        var root = RepoRoot();
        var path = Path.Combine(root, "samples", "notebooks", notebook);
        Environment.SetEnvironmentVariable("MAEML_SAMPLE_DATA", Path.Combine(root, "samples", "data", "cifar10-mini"));
        Environment.SetEnvironmentVariable("MAEML_PRETRAINED", Path.Combine(root, "pretrained"));
        using var kernel = new CSharpKernel();
        await Run(kernel, string.Join("\n", ManagedAssemblies().Select(a => $"#r \"{a}\"")), "references");
        var cells = JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(s => s.GetString())))
            .ToList();
        Assert.NotEmpty(cells);
        int displayed = 0;
        for (int i = 0; i < cells.Count; i++)
        {
            var code = string.Join("\n", cells[i].Split('\n').Where(l => !l.TrimStart().StartsWith("#r \"nuget:")));
            if (string.IsNullOrWhiteSpace(code)) continue;
            displayed += await Run(kernel, code, $"{notebook} cell {i + 1}");
        }
        Assert.True(displayed > 0, $"{notebook} displayed nothing inline");
    }

    async Task<int> Run(Kernel kernel, string code, string what)
    {
        var result = await kernel.SendAsync(new SubmitCode(code));
        var events = result.Events;
        foreach (var e in events.OfType<StandardOutputValueProduced>())
            output.WriteLine($"[{what}] {e.FormattedValues.FirstOrDefault()?.Value?.TrimEnd()}");
        var failed = events.OfType<CommandFailed>().FirstOrDefault();
        Assert.True(failed is null, $"{what} failed: {failed?.Message}\n{code}");
        return events.OfType<DisplayedValueProduced>().Count();
    }

    /// <summary>MaeMl and the libraries notebooks use directly, from this test's output folder.</summary>
    static IEnumerable<string> ManagedAssemblies()
    {
        var names = new[] { "MaeMl.dll", "TorchSharp.dll", "SkiaSharp.dll" };
        return Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
            .Where(f => names.Contains(Path.GetFileName(f)) || Path.GetFileName(f).StartsWith("Microsoft.ML."))
            .Where(f => { try { AssemblyName.GetAssemblyName(f); return true; } catch (BadImageFormatException) { return false; } });
    }
}
