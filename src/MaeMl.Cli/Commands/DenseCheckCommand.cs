using System.CommandLine;
using System.Diagnostics;
using MaeMl.Detection;
using MaeMl.Segmentation;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml dense-check</c>: builds the detector and segmenter for a preset, runs one training step each and exports them (timings).</summary>
public static class DenseCheckCommand
{
    public static Command Create()
    {
        var command = new Command("dense-check", "Check that a preset's detector (ViTDet pyramid + FCOS) and segmenter (pyramid head) build, run one training step on random data and export to ONNX (run once with ONNX Runtime); print times and sizes.");
        var preset = new Option<string>(Vocabulary.Model) { Description = "MAE preset of the ViT.", DefaultValueFactory = _ => "mae_vit_base_patch16" };
        var size = new Option<int>("--image-size") { Description = "Square input size (a multiple of the patch size).", DefaultValueFactory = _ => 224 };
        var batch = new Option<int>("--batch-size") { Description = "Random images per training step and ONNX run.", DefaultValueFactory = _ => 1 };
        var channels = new Option<int>("--pyramid-channels") { Description = "Channels of the feature pyramid and heads (detectron2: 256).", DefaultValueFactory = _ => 256 };
        var convs = new Option<int>("--head-convs") { Description = "Conv layers per FCOS tower (FCOS: 4).", DefaultValueFactory = _ => 4 };
        var threads = Vocabulary.ThreadsOption();
        var output = new Option<string>(Vocabulary.Out) { Description = "Folder for the exported ONNX files (deleted after the check).", DefaultValueFactory = _ => Path.GetTempPath() }.Legacy("--output-dir");
        foreach (var o in new Option[] { preset, size, batch, channels, convs, threads, output }) command.Options.Add(o);
        var attentionOptions = new BackboneAttentionOptions();
        attentionOptions.AddTo(command);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            var encoder = CliHelpers.Preset(parse.GetValue(preset)!) with { ImageSize = parse.GetValue(size), DropPath = 0 };
            int n = parse.GetValue(batch), s = encoder.ImageSize;
            var attention = attentionOptions.Read(parse, encoder.Depth);
            Console.WriteLine($"{parse.GetValue(preset)}: ViT {encoder.EmbedDim}x{encoder.Depth}, patch {encoder.PatchSize}, input {s}x{s}, batch {n}, torch threads {get_num_threads()}");
            Console.WriteLine($"backbone: {(attention ?? Model.BackboneAttention.Global).Describe()}");
            manual_seed(0);
            var watch = Stopwatch.StartNew();
            using (var det = new DetectionModel(new DetectionConfig(encoder, 80, parse.GetValue(channels), null, parse.GetValue(convs)) { Attention = attention }))
            {
                Report("detector built", det, watch);
                var boxes = Enumerable.Range(0, n).Select(_ => new[] { new BoxAnnotation(s * 0.2f, s * 0.3f, s * 0.6f, s * 0.9f, 0) }).ToArray();
                using var images = randn(n, 3, s, s);
                Step(det, () => { using var o = det.forward(images); return FcosLoss.Compute(det, o, boxes); }, watch, "detector");
                var path = Path.Combine(parse.GetValue(output)!, "maeml-dense-check-detector.onnx");
                DetectionOnnxExporter.Export(det, path);
                Console.WriteLine($"  exported {path} ({new FileInfo(path).Length / 1e6:F1} MB) in {watch.Elapsed.TotalSeconds:F1} s");
                RunOnnx(path, n, s, watch);
                File.Delete(path);
            }
            watch.Restart();
            using (var seg = new SegmentationModel(new SegmentationConfig(encoder, 150, SegmentationHeadKind.Pyramid, parse.GetValue(channels)) { Attention = attention }))
            {
                Report("segmenter built", seg, watch);
                using var images = randn(n, 3, s, s);
                using var labels = randint(0, 150, [n, s, s]);
                Step(seg, () => { using var logits = seg.forward(images); return SegmentationModel.Loss(logits, labels, 255); }, watch, "segmenter");
                var path = Path.Combine(parse.GetValue(output)!, "maeml-dense-check-segmenter.onnx");
                SegmentationOnnxExporter.Export(seg, path);
                Console.WriteLine($"  exported {path} ({new FileInfo(path).Length / 1e6:F1} MB) in {watch.Elapsed.TotalSeconds:F1} s");
                RunOnnx(path, n, s, watch);
                File.Delete(path);
            }
            return 0;
        });
        return command;
    }

    static void Report(string what, TorchSharp.torch.nn.Module model, Stopwatch watch)
    {
        long parameters = model.parameters().Sum(p => p.numel());
        Console.WriteLine($"{what}: {parameters / 1e6:F1} M parameters in {watch.Elapsed.TotalSeconds:F1} s");
        watch.Restart();
    }

    static void Step(TorchSharp.torch.nn.Module model, Func<TorchSharp.torch.Tensor> loss, Stopwatch watch, string what)
    {
        model.train();
        using var optimizer = optim.AdamW(model.parameters(), 1e-4);
        using var l = loss();
        optimizer.zero_grad();
        l.backward();
        optimizer.step();
        Console.WriteLine($"  one {what} training step: loss {l.item<float>():F4} in {watch.Elapsed.TotalSeconds:F1} s");
        watch.Restart();
    }

    static void RunOnnx(string path, int n, int s, Stopwatch watch)
    {
        watch.Restart();
        using var session = new InferenceSession(path);
        var input = new DenseTensor<float>(Enumerable.Repeat(128f, n * 3 * s * s).ToArray(), [n, 3, s, s]);
        var inputs = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor(Onnx.EncoderOnnxNames.Pixels, input) };
        if (session.InputMetadata.ContainsKey(DetectionOnnxNames.ImageSize))   // the detector's boxes in model pixels
            inputs.Add(NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.ImageSize, new DenseTensor<float>(Enumerable.Repeat((float)s, 2 * n).ToArray(), [n, 2])));
        using var results = session.Run(inputs);
        Console.WriteLine($"  ONNX Runtime ran it in {watch.Elapsed.TotalSeconds:F1} s (outputs {string.Join(", ", results.Select(r => r.Name))})");
        watch.Restart();
    }
}
