using System.CommandLine;
using System.Diagnostics;
using MaeMl.Data;
using MaeMl.MLNet;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml bench-featurize</c>: images/s of the ML.NET pipeline, batched ONNX Runtime and TorchSharp.</summary>
public static class BenchFeaturizeCommand
{
    public static Command Create()
    {
        var command = new Command("bench-featurize", "Featurize images (class folders) three ways and print images/s: the ML.NET pipeline (ApplyMaeEncoder, row by row), ONNX Runtime with batches (MaeEncoder) and TorchSharp with batches. Decoding is included in all three.");
        var source = new EncoderSource();
        source.AddTo(command);
        var data = new Option<string>(Vocabulary.Data) { Description = "Folder of class folders of images, e.g. cifar10/test (the labels are not used).", Required = true };
        var limit = new Option<int>("--limit") { Description = "Images to featurize (seeded random subset).", DefaultValueFactory = _ => 2000 };
        var batch = new Option<int>("--batch-size") { Description = "Batch size of the ONNX Runtime and TorchSharp paths.", DefaultValueFactory = _ => 64 };
        var pooling = new Option<string>("--pooling") { Description = "cls, mean or tokens.", DefaultValueFactory = _ => "cls" };
        var onnxOut = new Option<string?>(Vocabulary.Out) { Description = "Keep the exported ONNX encoder at this path (default: a temporary file, deleted)." }.Legacy("--onnx");
        var threads = Vocabulary.ThreadsOption("and ONNX Runtime intra-op threads of the batched path");
        foreach (var o in new Option[] { data, limit, batch, pooling, onnxOut, threads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            var files = CliHelpers.ListClassFolders(parse.GetValue(data)!, parse.GetValue(limit), seed: 0);
            var pool = CliHelpers.Pooling(parse.GetValue(pooling)!);
            int batchSize = parse.GetValue(batch);
            var (model, description) = source.Load(parse);
            using var _ = model;
            var onnx = parse.GetValue(onnxOut) ?? Path.Combine(Path.GetTempPath(), $"maeml-bench-{Environment.ProcessId}.onnx");
            VitEncoderOnnxExporter.Export(model, onnx, new VitEncoderOnnxOptions { Poolings = [pool] });
            Console.WriteLine(description);
            Console.WriteLine($"{files.Count} images from {parse.GetValue(data)}, pooling {pool}, batch {batchSize}, {Environment.ProcessorCount} cores, torch threads {torch.get_num_threads()}");
            try
            {
                var paths = files.Select(f => f.Path).ToList();
                var warm = paths.Take(Math.Min(32, paths.Count)).ToList();

                // ML.NET pipeline
                var ml = new MLContext(seed: 0);
                var view = MlNetLinearProbe.Images(ml, files);
                var watch = new Stopwatch();
                int n = 0;
                foreach (int? intra in new int?[] { 0, 1 })   // 0: ONNX Runtime's own choice; 1: one thread (the default for small inputs)
                {
                    var featurizer = MlNetLinearProbe.Featurizer(ml, onnx, pool, intra).Fit(view);
                    Count(featurizer.Transform(ml.Data.TakeRows(view, warm.Count)));
                    watch.Restart();
                    n = Count(featurizer.Transform(view));
                    Report($"ML.NET pipeline (LoadImages + ApplyMaeEncoder, ONNX Runtime intra-op threads {(intra == 0 ? "ORT default" : intra.ToString())})", n, watch.Elapsed);
                }

                // ONNX Runtime, batched
                using (var encoder = MaeEncoder.Open(onnx, pool, intraOpThreads: parse.GetValue(threads)))
                {
                    encoder.EmbedFiles(warm, batchSize);
                    watch.Restart();
                    n = encoder.EmbedFiles(paths, batchSize).Length;
                    Report($"ONNX Runtime batched (MaeEncoder.EmbedFiles, batch {batchSize})", n, watch.Elapsed);
                }

                // TorchSharp, batched
                TorchFeatures(model, warm, batchSize, pool);
                watch.Restart();
                n = TorchFeatures(model, paths, batchSize, pool);
                Report($"TorchSharp batched (ForwardFeatures, batch {batchSize})", n, watch.Elapsed);
            }
            finally
            {
                if (parse.GetValue(onnxOut) is null) File.Delete(onnx);
            }
            return 0;
        });
        return command;
    }

    static int Count(IDataView view)
    {
        int n = 0;
        foreach (var v in view.GetColumn<VBuffer<float>>("Features")) n += v.Length > 0 ? 1 : 0;
        return n;
    }

    static void Report(string what, int n, TimeSpan elapsed) =>
        Console.WriteLine($"  {what,-62} {n / elapsed.TotalSeconds,8:F1} images/s  ({n} in {elapsed.TotalSeconds:F1} s)");

    static int TorchFeatures(Model.MaskedAutoencoderViT model, IReadOnlyList<string> paths, int batchSize, EncoderPooling pooling)
    {
        int s = model.Config.ImageSize, per = 3 * s * s, done = 0;
        using var noGrad = no_grad();
        for (int start = 0; start < paths.Count; start += batchSize)
        {
            int b = Math.Min(batchSize, paths.Count - start);
            var pixels = new float[b * per];
            for (int i = 0; i < b; i++)
            {
                using var image = MLImage.CreateFromFile(paths[start + i]);
                MaeEncoder.ToRgbPlanes(image, s, pixels.AsSpan(i * per, per));
            }
            using var scope = NewDisposeScope();
            var tokens = model.ForwardFeatures(ImageNetNormalization.Normalize(tensor(pixels).view(b, 3, s, s)));
            var features = pooling switch { EncoderPooling.Cls => tokens[.., 0], EncoderPooling.Mean => tokens[.., 1..].mean([1]), _ => tokens };
            done += (int)features.contiguous().data<float>().ToArray().Length / (int)(features.numel() / b);
        }
        return done;
    }
}
