using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Runtime.CompilerServices;
using MaeMl.Training;
using TorchSharp;

namespace MaeMl.Cli;

/// <summary>
/// The words of the <c>maeml</c> command line: one option name per concept, the same in every command.
/// <list type="table">
/// <item><term><c>--model</c></term><description>a preset name (see <c>maeml info</c>), never a file</description></item>
/// <item><term><c>--weights</c></term><description>a weights file the command reads or starts a new run from (MAE, encoder or classifier:
/// <c>.maeml</c>, official <c>.pth</c>, safetensors)</description></item>
/// <item><term><c>--resume</c></term><description>a checkpoint of an interrupted run to continue exactly (schedule, optimizer, data order)</description></item>
/// <item><term><c>--out</c></term><description>what the command writes (a file or a run folder)</description></item>
/// <item><term><c>--data</c></term><description>images whose labels the command does not use (pretraining, benchmarks, reconstructions)</description></item>
/// <item><term><c>--train</c></term><description>labelled training images (class folders; with <c>--labels</c> / <c>--masks</c> for detection and segmentation)</description></item>
/// <item><term><c>--val</c></term><description>labelled held-out images, the same layout (<c>--val-labels</c> / <c>--val-masks</c>); what the eval commands score</description></item>
/// <item><term><c>--threads</c></term><description>torch (and ONNX Runtime) CPU threads, on every command that computes</description></item>
/// <item><term><c>--device</c></term><description>where a training command trains: cpu, cuda or cuda:N</description></item>
/// </list>
/// Spellings of earlier releases stay accepted for one release as hidden aliases (<see cref="Legacy{TOption}"/>) or hidden options
/// (<see cref="Retired{TOption}"/>); help never shows them.
/// </summary>
public static class Vocabulary
{
    public const string Model = "--model";
    public const string Weights = "--weights";
    public const string Resume = "--resume";
    public const string Out = "--out";
    public const string Data = "--data";
    public const string Train = "--train";
    public const string Val = "--val";
    public const string Threads = "--threads";
    public const string Device = "--device";

    /// <summary>Spellings that no command shows any more (each still parses where it used to, for one release).</summary>
    public static IReadOnlyList<string> RetiredSpellings { get; } =
    [
        "--checkpoint", "--init", "--backbone", "--model-file", "--from", "--to", "--output", "--output-dir", "--onnx", "--test",
        "--val-images", "--images", "--preset", "--num-heads", "--decoder-num-heads", "--crop-pct",
        "--seconds", "--train-limit", "--test-limit", "--cls-token", "--global-pool",
    ];

    static readonly ConditionalWeakTable<Option, List<string>> legacyAliases = new();
    static readonly ConditionalWeakTable<Option, object> retiredOptions = new();

    /// <summary>Adds old spellings of <paramref name="option"/> as aliases that parse but are left out of help.</summary>
    public static TOption Legacy<TOption>(this TOption option, params string[] spellings) where TOption : Option
    {
        var list = legacyAliases.GetOrCreateValue(option);
        foreach (var s in spellings) { option.Aliases.Add(s); list.Add(s); }
        return option;
    }

    /// <summary>Marks an option of an earlier release that has no alias form (its value type changed): hidden, still parsed.</summary>
    public static TOption Retired<TOption>(this TOption option) where TOption : Option
    {
        option.Hidden = true;
        retiredOptions.AddOrUpdate(option, true);
        return option;
    }

    /// <summary>Lets a weights option take the name of a shipped model (<c>cifar10-vit-tiny</c>) as well as a path, as
    /// <c>MaePretrained.Load</c> does; an existing file of that name wins.</summary>
    public static Option<T> ShippedNames<T>(this Option<T> option) where T : class?
    {
        option.CustomParser = r => r.Tokens.Count == 0 ? null! : (T)(object)MaeMl.Pretrained.MaePretrained.ResolveFile(r.Tokens[^1].Value);
        return option;
    }

    public static IReadOnlyList<string> LegacyAliasesOf(Option option) => legacyAliases.TryGetValue(option, out var list) ? list : [];
    public static bool IsRetired(Option option) => retiredOptions.TryGetValue(option, out _);

    /// <summary>The <c>--device</c> option of the training commands (the library's options check it: an unknown device or CUDA without a
    /// CUDA LibTorch is one line).</summary>
    public static Option<string> DeviceOption() => new(Device)
    {
        Description = "Training device: cpu, cuda or cuda:N (CUDA needs an app built with TorchSharp-cuda-linux/-windows instead of TorchSharp-cpu; untested here).",
        DefaultValueFactory = _ => "cpu",
    };

    /// <summary>The <c>--threads</c> option of commands that set torch's threads themselves (see <see cref="ApplyThreads"/>).</summary>
    public static Option<int> ThreadsOption(string? also = null) => new(Threads)
    {
        Description = "Torch CPU threads" + (also is null ? "" : $" ({also})") + "; 0 = the library default (all cores).",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>Checks <paramref name="threads"/> as the training options do and sets torch's intra-op threads (0 leaves them).</summary>
    public static void ApplyThreads(int threads)
    {
        PretrainOptions.CheckThreads(threads);
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>Makes <paramref name="root"/>'s help (<c>--help</c>, and the help after a parse error) leave out legacy aliases.</summary>
    public static void HideLegacyAliasesInHelp(RootCommand root)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithoutLegacyAliases((SynchronousCommandLineAction)help.Action!);
    }

    sealed class HelpWithoutLegacyAliases(SynchronousCommandLineAction help) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var removed = new List<(Option Option, string Alias)>();
            foreach (var command in Tree(parseResult.RootCommandResult.Command))
                foreach (var option in command.Options)
                    foreach (var alias in LegacyAliasesOf(option))
                        if (option.Aliases.Remove(alias)) removed.Add((option, alias));
            try { return help.Invoke(parseResult); }
            finally { foreach (var (option, alias) in removed) option.Aliases.Add(alias); }
        }
    }

    /// <summary><paramref name="command"/> and all its subcommands, depth first.</summary>
    public static IEnumerable<Command> Tree(Command command) => new[] { command }.Concat(command.Subcommands.SelectMany(Tree));
}
