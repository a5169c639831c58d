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
/// replaced by references to the assemblies built here, so the test checks this checkout's code (and the shipped weights
/// come from the repository's pretrained/, through MAEML_PRETRAINED).
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
        var cells = CodeCells(path);
        Assert.NotEmpty(cells);
        int displayed = 0;
        for (int i = 0; i < cells.Count; i++)
        {
            var code = WithoutNugetReferences(cells[i]);
            if (string.IsNullOrWhiteSpace(code)) continue;
            displayed += await Run(kernel, code, $"{notebook} cell {i + 1}");
        }
        Assert.True(displayed > 0, $"{notebook} displayed nothing inline");
    }

    /// <summary>The notebooks reference the MaeMl version this repository packs (Directory.Build.props), which the
    /// notebook tells how to pack and register; the test itself uses the assemblies built here instead.</summary>
    [Theory]
    [MemberData(nameof(Notebooks))]
    public void ReferencesTheVersionThisRepositoryPacks(string notebook)
    {
        var root = RepoRoot();
        var version = System.Xml.Linq.XDocument.Load(Path.Combine(root, "Directory.Build.props")).Descendants("Version").Single().Value;
        var cells = CodeCells(Path.Combine(root, "samples", "notebooks", notebook));
        var references = cells.SelectMany(c => c.Split('\n')).Where(l => l.TrimStart().StartsWith("#r \"nuget: MaeMl,")).ToList();
        Assert.Equal([$"#r \"nuget: MaeMl, {version}\""], references.Select(l => l.Trim()));
        Assert.Contains(cells, c => c.Contains("dotnet pack src/MaeMl") && c.Contains("dotnet nuget add source"));
    }

    /// <summary>Without the shipped weights the transfer-learning notebook stops at the encoder cell with an error that says
    /// where it looked, instead of carrying on with a random encoder.</summary>
    [Fact]
    public async Task MissingShippedWeightsStopTheNotebookWithAClearError()
    {
        var root = RepoRoot();
        var cells = CodeCells(Path.Combine(root, "samples", "notebooks", "mlnet-transfer-learning.ipynb"));
        var (cwd, env) = (Directory.GetCurrentDirectory(), Environment.GetEnvironmentVariable("MAEML_PRETRAINED"));
        var empty = Directory.CreateTempSubdirectory("maeml-notebook-no-weights-").FullName;
        try
        {
            Directory.SetCurrentDirectory(empty);   // no pretrained/ in this folder or above it
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", empty);
            Environment.SetEnvironmentVariable("MAEML_SAMPLE_DATA", Path.Combine(root, "samples", "data", "cifar10-mini"));
            using var kernel = new CSharpKernel();
            await Run(kernel, string.Join("\n", ManagedAssemblies().Select(a => $"#r \"{a}\"")), "references");
            CommandFailed? failed = null;
            var printed = new List<string>();
            foreach (var code in cells.Select(WithoutNugetReferences).Where(c => !string.IsNullOrWhiteSpace(c)))
            {
                var events = (await kernel.SendAsync(new SubmitCode(code))).Events;
                printed.AddRange(events.OfType<StandardOutputValueProduced>().Select(e => e.FormattedValues.FirstOrDefault()?.Value ?? ""));
                failed = events.OfType<CommandFailed>().FirstOrDefault();
                if (failed is not null) { Assert.Contains("MaePretrained.Load", code); break; }
            }
            Assert.NotNull(failed);
            output.WriteLine(failed.Message);
            Assert.Contains("cifar10-vit-tiny.maeml", failed.Message);
            Assert.Contains("MAEML_PRETRAINED", failed.Message);
            Assert.DoesNotContain(printed, p => p.Contains("random", StringComparison.OrdinalIgnoreCase));
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
            Environment.SetEnvironmentVariable("MAEML_PRETRAINED", env);
            Directory.Delete(empty, recursive: true);
        }
    }

    static List<string> CodeCells(string path) =>
        JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(s => s.GetString())))
            .ToList();

    static string WithoutNugetReferences(string code) =>
        string.Join("\n", code.Split('\n').Where(l => !l.TrimStart().StartsWith("#r \"nuget:")));

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
