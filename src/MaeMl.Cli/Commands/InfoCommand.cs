using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using MaeMl.Model;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml info</c>: versions, the runtime the tool was built for, ONNX Runtime, threads and the known model presets.</summary>
public static class InfoCommand
{
    /// <summary>The runtime identifiers the packed tool carries native libraries for (libtorch, ONNX Runtime, SkiaSharp).</summary>
    public static IReadOnlyList<string> SupportedRuntimeIdentifiers { get; } = ["linux-x64"];

    /// <summary>The RuntimeIdentifier this build of the tool was compiled for (MaeMl.Cli.csproj), or null.</summary>
    public static string? BuiltRuntimeIdentifier =>
        typeof(InfoCommand).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "MaeMl.ToolRuntimeIdentifier")?.Value;

    public static Command Create()
    {
        var command = new Command("info", "Print library versions, the supported platform, ONNX Runtime, torch threads and the MAE presets.");
        command.SetAction(_ =>
        {
            Console.WriteLine($"MaeMl {typeof(MaskedAutoencoderViT).Assembly.GetName().Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, torch threads {torch.get_num_threads()}");
            var running = RuntimeInformation.RuntimeIdentifier;
            Console.WriteLine($"platform: built for {BuiltRuntimeIdentifier ?? "?"} (supported: {string.Join(", ", SupportedRuntimeIdentifiers)}), " +
                              $"running on {running} ({RuntimeInformation.OSDescription}), .NET {Environment.Version}");
            if (!SupportedRuntimeIdentifiers.Contains(running))
                Console.WriteLine($"  warning: {running} is not a supported runtime; the native libraries shipped with the tool will not load");
            Console.WriteLine($"ONNX Runtime: {OnnxRuntimeStatus()}");
            foreach (var (name, make) in MaePresets.All)
            {
                var c = make();
                Console.WriteLine($"  {name,-28} img {c.ImageSize} patch {c.PatchSize} enc {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads) dec {c.DecoderEmbedDim}x{c.DecoderDepth} ({c.DecoderNumHeads} heads)");
            }
            return 0;
        });
        return command;
    }

    /// <summary>ONNX Runtime's version and execution providers, or why its native library does not load.</summary>
    public static string OnnxRuntimeStatus()
    {
        try
        {
            var env = OrtEnv.Instance();
            return $"{env.GetVersionString()}, providers {string.Join(", ", env.GetAvailableProviders())}";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or BadImageFormatException)
        {
            return $"native library not loadable ({(e.InnerException ?? e).Message})";
        }
    }
}
