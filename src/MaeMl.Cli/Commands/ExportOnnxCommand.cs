using System.CommandLine;
using System.Diagnostics;
using MaeMl.Onnx;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml export-onnx</c>: writes the encoder as an ONNX model for ONNX Runtime and ML.NET.</summary>
public static class ExportOnnxCommand
{
    public static Command Create()
    {
        var command = new Command("export-onnx", "Export the ViT encoder (with ImageNet preprocessing, dynamic batch) to ONNX for ONNX Runtime and ML.NET's ApplyMaeEncoder.");
        var source = new EncoderSource();
        source.AddTo(command);
        var output = new Option<string>(Vocabulary.Out) { Description = "ONNX file to write.", Required = true };
        var pooling = new Option<string>("--pooling") { Description = "Outputs: cls, mean, tokens, a comma-separated list, or all.", DefaultValueFactory = _ => "all" };
        var noPreprocessing = new Option<bool>("--no-preprocessing") { Description = "Take already normalised pixels instead of 0..255 RGB (not usable by ApplyMaeEncoder)." };
        var opset = new Option<int>("--opset") { Description = "ONNX opset (17 or newer).", DefaultValueFactory = _ => new VitEncoderOnnxOptions().Opset };
        var verify = new Option<int>("--verify") { Description = "Compare ONNX Runtime with TorchSharp on this many random images and print the max abs difference.", DefaultValueFactory = _ => 0 };
        var threads = Vocabulary.ThreadsOption("also of the --verify run");
        foreach (var o in new Option[] { output, pooling, noPreprocessing, opset, verify, threads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            var poolings = CliHelpers.Poolings(parse.GetValue(pooling)!);
            var (model, description) = source.Load(parse);
            using var _ = model;
            var path = parse.GetValue(output)!;
            var watch = Stopwatch.StartNew();
            VitEncoderOnnxExporter.Export(model, path, new VitEncoderOnnxOptions
            {
                Poolings = poolings,
                IncludePreprocessing = !parse.GetValue(noPreprocessing),
                Opset = parse.GetValue(opset),
            });
            Console.WriteLine($"{description}");
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, outputs {string.Join(", ", poolings.Select(EncoderOnnxNames.Output))}) in {watch.Elapsed.TotalSeconds:F1} s");
            int n = parse.GetValue(verify);
            if (n > 0)
            {
                if (parse.GetValue(noPreprocessing)) throw new CliException("--verify needs the preprocessing in the graph");
                watch.Restart();
                var errors = EncoderOnnxParity.MaxAbsDifference(model, path, n);
                foreach (var (p, err) in errors) Console.WriteLine($"parity ONNX Runtime vs TorchSharp, {n} random images, {p}: max abs {err:E2}");
                Console.WriteLine($"verified in {watch.Elapsed.TotalSeconds:F1} s");
                if (errors.Values.Any(e => !(e <= 1e-4))) { Console.Error.WriteLine("maeml: parity above 1e-4"); return 1; }
            }
            return 0;
        });
        return command;
    }
}
