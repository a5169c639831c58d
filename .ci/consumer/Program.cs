// A fresh consumer of the MaeMl NuGet package (CI packs the library, installs it from a local feed and runs this):
// TorchSharp must load (the buildTransitive GLIBCXX fix), an MAE must train a step, the encoder must export to ONNX
// and run inside an ML.NET pipeline that is saved and reloaded.
using MaeMl.MLNet;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;

var config = new MaeConfig { ImageSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 };
torch.manual_seed(0);
using var mae = new MaskedAutoencoderViT(config);
using var optimizer = torch.optim.AdamW(mae.parameters().Where(p => p.requires_grad), 1e-3);
float first = 0, last = 0;
using var imgs = torch.randn(8, 3, 32, 32);
for (int step = 0; step < 20; step++)
{
    using var scope = torch.NewDisposeScope();
    using var gen = new torch.Generator(1, torch.CPU);
    var output = mae.Forward(imgs, torch.rand(new long[] { 8, config.NumPatches }, generator: gen));
    if (step == 0) first = output.Loss.item<float>();
    last = output.Loss.item<float>();
    output.Loss.backward();
    optimizer.step();
    optimizer.zero_grad();
}
Console.WriteLine($"MAE loss {first:F4} -> {last:F4}");
if (!(last < first)) throw new Exception("the loss did not fall");

var onnx = Path.Combine(Path.GetTempPath(), $"consumer-encoder-{Guid.NewGuid():N}.onnx");
VitEncoderOnnxExporter.Export(mae, onnx);
var ml = new MLContext(seed: 0);
var rng = new Random(0);
var dir = Path.Combine(Path.GetTempPath(), $"consumer-images-{Guid.NewGuid():N}");
Directory.CreateDirectory(dir);
var rows = Enumerable.Range(0, 4).Select(i =>
{
    var rgba = new byte[32 * 32 * 4];
    rng.NextBytes(rgba);
    for (int k = 3; k < rgba.Length; k += 4) rgba[k] = 255;
    var path = Path.Combine(dir, $"img{i}.png");
    using var image = MLImage.CreateFromPixels(32, 32, MLPixelFormat.Rgba32, rgba);
    image.Save(path);
    return new Row { ImagePath = path };
}).ToList();
var data = ml.Data.LoadFromEnumerable(rows);
var model = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
    .Append(ml.Transforms.ApplyMaeEncoder("Features", "Image", onnx)).Fit(data);
var zip = Path.ChangeExtension(onnx, ".zip");
ml.Model.Save(model, data.Schema, zip);
var reloaded = new MLContext().Model.Load(zip, out _);
var a = model.Transform(data).GetColumn<VBuffer<float>>("Features").SelectMany(v => v.DenseValues()).ToArray();
var b = reloaded.Transform(data).GetColumn<VBuffer<float>>("Features").SelectMany(v => v.DenseValues()).ToArray();
Console.WriteLine($"ML.NET featurizer: {a.Length / rows.Count} features per image, max |fitted - reloaded| = {a.Zip(b, (x, y) => Math.Abs(x - y)).Max():E2}");
if (a.Length != b.Length || a.Zip(b).Any(p => p.First != p.Second)) throw new Exception("the reloaded pipeline predicts differently");
// the README's GPU line with the CPU-only native package: must fall back to the CPU, not throw EntryPointNotFoundException
var onGpu = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
    .Append(ml.Transforms.ApplyMaeEncoder("Features", "Image", onnx, gpuDeviceId: 0, fallbackToCpu: true)).Fit(data);
var c = onGpu.Transform(data).GetColumn<VBuffer<float>>("Features").SelectMany(v => v.DenseValues()).ToArray();
if (c.Length != a.Length || a.Zip(c).Any(p => p.First != p.Second)) throw new Exception("gpuDeviceId: 0 with fallback gave other features");
using (var encoder = MaeEncoder.Open(onnx, EncoderPooling.Cls, gpuDeviceId: 0, fallbackToCpu: true))
    Console.WriteLine($"gpuDeviceId 0 with the CPU ONNX Runtime: fell back to {encoder.ExecutionProvider}");
using (var shipped = MaeMl.Pretrained.MaePretrained.Load("cifar10-vit-tiny"))
{
    using var x = torch.randn(2, 3, 32, 32);
    using var features = shipped.ForwardFeatures(x);
    Console.WriteLine($"shipped cifar10-vit-tiny from the package: features [{string.Join(", ", features.shape)}]");
}
Console.WriteLine("consumer OK");

sealed class Row
{
    public string ImagePath { get; set; } = "";
}
