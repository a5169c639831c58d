using System.CommandLine;
using System.Globalization;
using MaeMl.Interop;
using MaeMl.Training;

namespace MaeMl.Cli.Commands;

/// <summary>
/// <c>maeml handoff export RUN.maeml --out checkpoint-N.pth</c> and <c>maeml handoff import checkpoint-N.pth --out RUN.maeml</c>: a
/// pretraining run moves to the official <c>main_pretrain.py</c> (torchrun on many GPUs, <c>--resume</c>) and back, with its weights,
/// AdamW moments and step, and epoch (see <see cref="OfficialTrainingCheckpoint"/> and docs/scale-out.md).
/// </summary>
public static class HandoffCommand
{
    public static Command Create()
    {
        var command = new Command("handoff", "Move a pretraining run to the official PyTorch main_pretrain.py (torchrun / DDP) and back: weights, AdamW state, step and epoch.");
        command.Subcommands.Add(Export());
        command.Subcommands.Add(Import());
        return command;
    }

    static Command Export()
    {
        var source = new Argument<string>("checkpoint") { Description = "A MaeMl pretraining checkpoint with its optimizer state (e.g. runs/pretrain/checkpoint-last.maeml)" };
        var output = new Option<string>("--out") { Description = "The official training checkpoint to write (checkpoint-N.pth, for main_pretrain.py --resume)", Required = true };
        var midEpoch = new Option<MidEpochPosition>("--mid-epoch")
        {
            Description = "A checkpoint written inside an epoch: round to the nearest epoch boundary, down (repeat the epoch), up (skip its rest), or refuse",
            DefaultValueFactory = _ => MidEpochPosition.Nearest,
        };
        var gpus = new Option<int>("--gpus") { Description = "GPUs of the torchrun command printed at the end (per-GPU batch = effective batch / GPUs)", DefaultValueFactory = _ => 8 };
        var command = new Command("export", "Write a MaeMl pretraining checkpoint as the official training checkpoint util/misc.save_model writes ({model, optimizer, epoch, scaler, args}).")
        { source, output, midEpoch, gpus };
        command.SetAction(parse =>
        {
            int n = parse.GetValue(gpus);
            if (n < 1) throw new CliException($"--gpus must be at least 1, got {n}");
            var result = OfficialTrainingCheckpoint.Export(parse.GetValue(source)!, parse.GetValue(output)!, new OfficialExportOptions { MidEpoch = parse.GetValue(midEpoch) });
            foreach (var note in result.Notes) Console.WriteLine($"note: {note}");
            Console.WriteLine($"wrote '{result.Path}': epoch {result.OfficialEpoch} finished (--resume starts at epoch {result.ResumesAtEpoch}), " +
                              $"{result.OptimizerSteps} AdamW steps, model {result.ModelName}, effective batch {result.Run.EffectiveBatchSize}, lr {result.Run.PeakLr:G4}");
            if (result.Split(n) is { Exact: false } split)
                Console.WriteLine($"note: the effective batch {result.Run.EffectiveBatchSize} does not split over {n} GPU(s); the command uses {split.BatchSize} per GPU " +
                                  $"({split.BatchSize * n} per step) with --lr unchanged");
            Console.WriteLine("continue on " + n + " GPU(s) with facebookresearch/mae:");
            Console.WriteLine($"  torchrun --nproc_per_node={n} main_pretrain.py {string.Join(' ', result.MainPretrainArguments(n).Select(Quote))} --output_dir OUT");
            return 0;
        });
        return command;
    }

    static Command Import()
    {
        var source = new Argument<string>("checkpoint") { Description = "An official main_pretrain.py training checkpoint (checkpoint-N.pth: model, optimizer, epoch, scaler, args)" };
        var output = new Option<string>("--out") { Description = "The MaeMl pretraining checkpoint to write (.maeml), for maeml pretrain --resume", Required = true };
        var model = new Option<string?>("--model") { Description = "A preset whose attention heads the model has (default: args.model of the file when it names a preset, or the paper architecture of its size)" };
        var heads = new Option<int?>("--heads") { Description = "Encoder attention heads (not recorded in tensor shapes; default as for --model)" };
        var decoderHeads = new Option<int?>("--decoder-heads") { Description = "Decoder attention heads (16 for the paper's 512-wide decoders)" };
        var command = new Command("import", "Write an official main_pretrain.py training checkpoint as a MaeMl pretraining checkpoint that maeml pretrain --resume continues.")
        { source, output, model, heads, decoderHeads };
        command.SetAction(parse =>
        {
            MaeLoadOptions? load = null;
            if (parse.GetValue(model) is not null || parse.GetValue(heads) is not null || parse.GetValue(decoderHeads) is not null)
                load = new MaeLoadOptions { Preset = parse.GetValue(model), NumHeads = parse.GetValue(heads), DecoderNumHeads = parse.GetValue(decoderHeads) };
            var result = OfficialTrainingCheckpoint.Import(parse.GetValue(source)!, parse.GetValue(output)!, new OfficialImportOptions { Load = load });
            foreach (var note in result.Notes) Console.WriteLine($"note: {note}");
            var c = result.Config;
            var run = result.Run;
            Console.WriteLine($"wrote '{result.Path}': resumes at epoch {result.Epoch}, {result.OptimizerSteps} AdamW steps taken, " +
                              $"img {c.ImageSize}, patch {c.PatchSize}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads), decoder {c.DecoderEmbedDim}x{c.DecoderDepth} ({c.DecoderNumHeads} heads)");
            Console.WriteLine("continue with MaeMl (the official run's schedule; same effective batch " + run.EffectiveBatchSize + "):");
            var args = new List<string>
            {
                "--resume", result.Path, "--data", run.DataDir.Length > 0 ? run.DataDir : "DATA", "--out", "OUT", "--epochs", Num(run.Epochs),
                "--warmup-epochs", Num(run.WarmupEpochs), "--lr", Num(run.PeakLr), "--min-lr", Num(run.MinLr), "--weight-decay", Num(run.WeightDecay),
                "--batch-size", Num(run.BatchSize), "--accum-iter", Num(run.AccumIter), "--seed", Num(run.Seed), "--mask-ratio", Num(c.MaskRatio),
            };
            if (!c.NormPixLoss) args.Add("--no-norm-pix-loss");
            Console.WriteLine($"  maeml pretrain {string.Join(' ', args.Select(Quote))} (with --model / size options of this architecture)");
            return 0;
        });
        return command;
    }

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Quote(string s) => s.Length > 0 && s.All(ch => char.IsLetterOrDigit(ch) || "-_./=:+".Contains(ch)) ? s : $"'{s.Replace("'", "'\\''")}'";
}
