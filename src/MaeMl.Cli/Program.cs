using System.CommandLine;
using MaeMl.Cli.Commands;

namespace MaeMl.Cli;

/// <summary><c>maeml</c>: pretrain, fine-tune, evaluate, inspect, convert and export Masked Autoencoders from the command line.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("maeml: Masked Autoencoders (MAE) for .NET - pretrain, fine-tune, evaluate, look at, convert and export ViT encoders.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        try
        {
            // CliException must reach the catch below (one line, exit code 2), not System.CommandLine's stack-trace printer
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"maeml: {e.Message}");
            return 2;
        }
        catch (Exception e) when (MissingNativeLibrary(e) is { } missing)
        {
            // a broken install (or an unsupported platform) rather than a bug: one line that says what to check
            Console.Error.WriteLine($"maeml: a native library could not be loaded: {missing.Message}");
            Console.Error.WriteLine($"maeml: the tool supports {string.Join(", ", InfoCommand.SupportedRuntimeIdentifiers)} (this is {System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier}); 'maeml info' shows what loads");
            return 3;
        }
    }

    static DllNotFoundException? MissingNativeLibrary(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is DllNotFoundException dll) return dll;
        return null;
    }

    /// <summary>Every subcommand, one file each under Commands/.</summary>
    public static IEnumerable<Command> Commands()
    {
        yield return InfoCommand.Create();
        yield return PretrainCommand.Create();
        yield return ReconstructCommand.Create();
        yield return BenchCommand.Create();
        yield return QuickstartCommand.Create();
        yield return InspectCommand.Create();
        yield return ConvertCommand.Create();
        yield return ExportOnnxCommand.Create();
        yield return BenchFeaturizeCommand.Create();
        yield return LinearEvalCommand.Create();
        yield return SegmentTrainCommand.Create();
        yield return SegmentEvalCommand.Create();
        yield return DetectTrainCommand.Create();
        yield return DetectEvalCommand.Create();
        yield return DenseCheckCommand.Create();
        yield return FinetuneCommand.Create();
        yield return LinearProbeCommand.Create();
        yield return EvalCommand.Create();
    }
}

/// <summary>An error to report in one line without a stack trace (bad input, missing file).</summary>
public sealed class CliException(string message) : Exception(message);
