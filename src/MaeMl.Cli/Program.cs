using System.CommandLine;
using MaeMl.Cli.Commands;

namespace MaeMl.Cli;

/// <summary><c>maeml</c>: pretrain, fine-tune, evaluate, inspect, convert and export Masked Autoencoders from the command line.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        MaeMl.Native.CpuAllocator.Configure();   // before LibTorch's first allocation (see the class)
        var root = Root();
        // --verbose (anywhere) adds the stack trace to a failure's one line
        bool verbose = args.Contains("--verbose");
        if (verbose) args = args.Where(a => a != "--verbose").ToArray();
        try
        {
            // every failure must reach the catch below (one line, exit code 2), not System.CommandLine's stack-trace printer
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (MissingNativeLibrary(e) is { } missing)
        {
            // a broken install (or an unsupported platform) rather than a bug: one line that says what to check
            Console.Error.WriteLine($"maeml: a native library could not be loaded: {missing.Message}");
            Console.Error.WriteLine($"maeml: the tool supports {string.Join(", ", InfoCommand.SupportedRuntimeIdentifiers)} (this is {System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier}); 'maeml info' shows what loads");
            if (verbose) Console.Error.WriteLine(e);
            return 3;
        }
        catch (OperationCanceledException e)
        {
            // a training command stopped by SIGINT/SIGTERM (StopOnSignal): the message says where, and which checkpoint continues it
            Console.Error.WriteLine($"maeml: {e.Message.ReplaceLineEndings(" ").Trim()}");
            return StopOnSignal.ExitCode;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"maeml: {OneLine(e)}");
            if (verbose) Console.Error.WriteLine(e);
            return 2;
        }
    }

    static DllNotFoundException? MissingNativeLibrary(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is DllNotFoundException dll) return dll;
        return null;
    }

    /// <summary>The one error line (commands throw; nothing below Main catches to reword): the message (which names the file) of the exception, or of the file error inside a
    /// wrapper; exception types the user did not cause (a bug, native code) are named too.</summary>
    public static string OneLine(Exception e)
    {
        while (e is AggregateException or System.Reflection.TargetInvocationException or TypeInitializationException && e.InnerException is not null)
            e = e.InnerException!;
        var message = e.Message.ReplaceLineEndings(" ").Trim();
        return e switch
        {
            CliException or IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException or MaeMl.Training.NonFiniteLossException => message,
            OutOfMemoryException => $"out of memory ({message}); use a smaller model, batch or image size",
            _ => $"{message} ({e.GetType().Name}; run with --verbose for details)",
        };
    }

    /// <summary>The <c>maeml</c> command tree; its help leaves out the spellings <see cref="Vocabulary"/> keeps only for compatibility.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("maeml: Masked Autoencoders (MAE) for .NET - pretrain, fine-tune, evaluate, look at, convert and export ViT encoders. " +
                                   $"The same words everywhere: {Vocabulary.Model} is a preset name, {Vocabulary.Weights} a weights file to read or start from, " +
                                   $"{Vocabulary.Resume} continues an interrupted run, {Vocabulary.Out} is what a command writes, {Vocabulary.Data} unlabelled images, " +
                                   $"{Vocabulary.Train} / {Vocabulary.Val} labelled training / held-out images, {Vocabulary.Threads} the CPU threads.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        Vocabulary.HideLegacyAliasesInHelp(root);
        return root;
    }

    /// <summary>Every subcommand, one file each under Commands/ (shared code lives in <see cref="CliHelpers"/> and <see cref="Reports"/>).</summary>
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
        yield return LinearProbeCommand.CreateLinearEvalAlias();
        yield return SegmentTrainCommand.Create();
        yield return SegmentEvalCommand.Create();
        yield return DetectTrainCommand.Create();
        yield return DetectEvalCommand.Create();
        yield return DenseCheckCommand.Create();
        yield return FinetuneCommand.Create();
        yield return LinearProbeCommand.Create();
        yield return EvalCommand.Create();
        yield return HandoffCommand.Create();
    }
}

/// <summary>An error to report in one line without a stack trace (bad input, missing file).</summary>
public sealed class CliException(string message) : Exception(message);
