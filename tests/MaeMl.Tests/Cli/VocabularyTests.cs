using System.CommandLine;
using System.CommandLine.Help;
using System.Text.RegularExpressions;
using MaeMl.Cli;
using MaeMl.Detection;
using MaeMl.Training;
using Mono.Cecil;
using Mono.Cecil.Cil;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary>
/// The command line speaks one vocabulary (<see cref="Vocabulary"/>): every option of every command is described, help shows no
/// spelling of earlier releases, those spellings still parse, every computing command takes --threads, defaults are the
/// library's, and command files do not call each other.
/// </summary>
public class VocabularyTests
{
    /// <summary>Every command below the root of a fresh tree, with the words that invoke it.</summary>
    static IEnumerable<(string[] Path, Command Command)> AllCommands(Command? root = null)
    {
        IEnumerable<(string[], Command)> Below(string[] path, Command c) =>
            c.Subcommands.SelectMany(s => new[] { ((string[])[.. path, s.Name], s) }.Concat(Below([.. path, s.Name], s)));
        return Below([], root ?? Program.Root());
    }

    static IEnumerable<Option> OwnOptions(Command command) => command.Options.Where(o => o is not HelpOption and not VersionOption);

    static string Help(params string[] args)
    {
        using var output = new StringWriter();
        int code = Program.Root().Parse([.. args, "--help"]).Invoke(new InvocationConfiguration { Output = output, EnableDefaultExceptionHandler = false });
        Assert.Equal(0, code);
        return output.ToString();
    }

    static bool Shows(string help, string spelling) => Regex.IsMatch(help, $@"(?<![\w-]){Regex.Escape(spelling)}(?![\w-])");

    [Fact]
    public void EveryCommandOptionAndArgumentHasADescription()
    {
        var missing = new List<string>();
        foreach (var (_, command) in AllCommands())
        {
            if (string.IsNullOrWhiteSpace(command.Description)) missing.Add(command.Name);
            missing.AddRange(OwnOptions(command).Where(o => string.IsNullOrWhiteSpace(o.Description)).Select(o => $"{command.Name} {o.Name}"));
            missing.AddRange(command.Arguments.Where(a => string.IsNullOrWhiteSpace(a.Description)).Select(a => $"{command.Name} <{a.Name}>"));
        }
        Assert.True(missing.Count == 0, "no description: " + string.Join(", ", missing));
    }

    [Fact]
    public void HelpShowsOnlyTheVocabulary()
    {
        var root = Help();
        Assert.DoesNotContain("linear-eval", root);   // one linear-probe command: linprobe (--trainer mlnet is the old linear-eval)
        var visible = new List<string>();
        foreach (var (path, command) in AllCommands().Where(c => !c.Command.Hidden))
        {
            var help = Help(path);
            foreach (var spelling in Vocabulary.RetiredSpellings.Concat(OwnOptions(command).SelectMany(Vocabulary.LegacyAliasesOf)).Distinct())
                if (Shows(help, spelling)) visible.Add($"{command.Name}: {spelling}");
            foreach (var option in OwnOptions(command).Where(o => !o.Hidden))
            {
                Assert.True(Shows(help, option.Name), $"{command.Name} {option.Name} is missing from help");
                if (option.Name == Vocabulary.Model) Assert.Contains("preset", option.Description!, StringComparison.OrdinalIgnoreCase);   // --model is a preset, never a file
            }
            Assert.True(OwnOptions(command).Where(o => !o.Hidden).All(o => !Vocabulary.IsRetired(o)), command.Name);
        }
        Assert.True(visible.Count == 0, "old spellings shown in help: " + string.Join(", ", visible));
    }

    [Theory]
    [InlineData("pretrain --data d --init w.pth", "--weights", "w.pth")]
    [InlineData("pretrain --data d --num-heads 4 --decoder-num-heads 2", "--decoder-heads", "2")]
    [InlineData("finetune --train t --init w.maeml", "--weights", "w.maeml")]
    [InlineData("linprobe --train t --init w.maeml --test v", "--val", "v")]
    [InlineData("linear-eval --checkpoint w.maeml --train t --test v --train-limit 100 --test-limit 50 --pooling mean", "--weights", "w.maeml")]
    [InlineData("export-onnx --checkpoint w.maeml --out e.onnx", "--weights", "w.maeml")]
    [InlineData("bench-featurize --checkpoint w.maeml --data d --onnx e.onnx", "--out", "e.onnx")]
    [InlineData("reconstruct --checkpoint w.maeml --images a.png", "--weights", "w.maeml")]
    [InlineData("quickstart --seconds 30", "--time-limit", "30")]
    [InlineData("eval --model c.maeml --data v --limit-per-class 5 --crop-pct 1", "--val", "v")]
    [InlineData("eval --model c.maeml --data v", "--weights", "c.maeml")]
    [InlineData("convert --from a.pth --to b.safetensors --preset mae_vit_base_patch16", "--out", "b.safetensors")]
    [InlineData("convert --from a.pth --to b.safetensors", "--weights", "a.pth")]
    [InlineData("inspect f.pth --preset mae_vit_base_patch16", "--model", "mae_vit_base_patch16")]
    [InlineData("detect-train --backbone m.maeml --images i --labels l --val-images vi --val-labels vl --output det.model", "--out", "det.model")]
    [InlineData("detect-train --backbone m.maeml --images i --labels l --val-images vi --val-labels vl", "--train", "i")]
    [InlineData("detect-eval --model-file det.model --val-images vi --val-labels vl", "--weights", "det.model")]
    [InlineData("segment-train --backbone m.maeml --images i --masks k --val-images vi --val-masks vk", "--weights", "m.maeml")]
    [InlineData("segment-eval --model-file seg.model --val-images vi --val-masks vk", "--val", "vi")]
    [InlineData("dense-check --output-dir /tmp", "--out", "/tmp")]
    public void OldSpellingsStillParse(string line, string option, string expected)
    {
        var parse = Program.Root().Parse(line.Split(' '));
        Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));
        Assert.Equal(expected, string.Join(",", parse.GetResult(option)!.Tokens.Select(t => t.Value)));
    }

    [Fact]
    public void EveryLegacyAliasAndRetiredOptionBindsToItsOption()
    {
        int checkedSpellings = 0;
        var root = Program.Root();
        foreach (var (path, command) in AllCommands(root))
            foreach (var option in OwnOptions(command))
                foreach (var spelling in Vocabulary.LegacyAliasesOf(option).Concat(Vocabulary.IsRetired(option) ? [option.Name] : []))
                {
                    var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
                    string[] value = type == typeof(bool) ? [] : [type == typeof(string) || type == typeof(string[]) ? "x" : "1"];
                    var parse = root.Parse([.. path, .. command.Arguments.Select(_ => "arg"), spelling, .. value]);
                    Assert.True(parse.GetResult(option) is { Implicit: false }, $"{command.Name} {spelling} does not bind to {option.Name}");
                    Assert.DoesNotContain(parse.Errors, e => e.Message.Contains(spelling));
                    checkedSpellings++;
                }
        Assert.True(checkedSpellings >= 20, $"only {checkedSpellings} old spellings found");
    }

    [Fact]
    public void EveryCommandThatComputesTakesThreads()
    {
        // not computing: versions, a file's tensor list, and moving training checkpoints between formats (handoff export / import)
        var without = AllCommands().Where(c => c.Path[0] is not ("info" or "inspect" or "handoff") && !c.Command.Options.Any(o => o.Name == Vocabulary.Threads))
            .Select(c => string.Join(' ', c.Path)).ToList();
        Assert.True(without.Count == 0, "no --threads: " + string.Join(", ", without));
    }

    [Fact]
    public void DefaultsAreTheLibraryOptionRecords()
    {
        T Default<T>(string line, string option) => Program.Root().Parse(line.Split(' ')).GetValue<T>(option)!;
        var pretrain = new PretrainOptions { DataDir = "", OutputDir = "" };
        Assert.Equal(pretrain.Epochs, Default<int>("pretrain --data d", "--epochs"));
        Assert.Equal(pretrain.WarmupEpochs, Default<double>("pretrain --data d", "--warmup-epochs"));
        Assert.Equal(pretrain.BaseLr, Default<double>("pretrain --data d", "--blr"));
        Assert.Equal(pretrain.Prefetch, Default<int>("pretrain --data d", "--prefetch"));
        Assert.Equal(pretrain.Model, MaeMl.Model.MaePresets.Get(Default<string>("pretrain --data d", "--model")));
        var probe = new LinearProbeOptions { TrainDir = "", OutputDir = "" };
        Assert.Equal(probe.Epochs, Default<int>("linprobe --train t", "--epochs"));
        Assert.Equal(probe.BatchSize, Default<int>("linprobe --train t", "--batch-size"));
        Assert.Equal(probe.BaseLr, Default<double>("linprobe --train t", "--blr"));
        Assert.Equal(probe.EvalCropPct, Default<double>("linprobe --train t", "--eval-crop-pct"));
        Assert.Equal(probe.GlobalPool ? "mean" : "cls", Default<string>("linprobe --train t", "--pooling"));
        var dense = new DenseTrainingOptions();
        Assert.Equal(dense.Epochs, Default<int>("detect-train --model m", "--epochs"));
        Assert.Equal(dense.Lr, Default<double>("segment-train --model m", "--lr"));
        var detection = new DetectionConfig(new MaeMl.Model.MaeConfig(), 1);
        Assert.Equal(detection.ScoreThreshold, Default<float>("detect-train --model m", "--score-threshold"));
        Assert.Equal(detection.HeadConvs, Default<int>("detect-train --model m", "--head-convs"));
        var small = FinetuneOptions.SmallImages("", "");
        Assert.Contains($"(default {small.Epochs})", Help("finetune"));
        Assert.Equal(small.GlobalPool ? "mean" : "cls", Default<string>("finetune --train t", "--pooling"));
    }

    [Fact]
    public void CommandFilesDoNotCallEachOther()
    {
        using var assembly = AssemblyDefinition.ReadAssembly(typeof(Program).Assembly.Location);
        var commands = assembly.MainModule.Types.Where(t => t.Namespace == "MaeMl.Cli.Commands" && t.Name.EndsWith("Command")).ToList();
        Assert.NotEmpty(commands);
        var calls = new List<string>();
        foreach (var command in commands)
        {
            var others = commands.Where(c => c != command).Select(c => c.FullName).ToHashSet();
            foreach (var type in WithNested(command))
                foreach (var method in type.Methods.Where(m => m.HasBody))
                    foreach (var instruction in method.Body.Instructions)
                    {
                        var target = instruction.Operand switch
                        {
                            TypeReference t => t, MemberReference m => m.DeclaringType, _ => null,
                        };
                        for (; target is not null; target = target.DeclaringType)
                            if (others.Contains(target.FullName)) calls.Add($"{command.Name} -> {target.Name}");
                    }
        }
        Assert.True(calls.Count == 0, "commands calling commands (move the helper to CliHelpers / Reports): " + string.Join(", ", calls.Distinct()));

        static IEnumerable<TypeDefinition> WithNested(TypeDefinition t) => new[] { t }.Concat(t.NestedTypes.SelectMany(WithNested));
    }
}
