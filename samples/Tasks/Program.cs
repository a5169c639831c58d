// One sample per task. Run from the repository root, e.g.
//   dotnet run --project samples/Tasks -c Release -- pretrain samples/data/cifar10-mini/train
// Each sample is one file in this folder; read it top to bottom.
var samples = new Dictionary<string, (string Usage, Func<string[], int> Run)>
{
    ["pretrain"] = ("pretrain IMAGE_FOLDER [OUT]  - MAE pretraining on your own images, then a reconstruction grid", PretrainOnYourImages.Run),
    ["finetune"] = ("finetune TRAIN_FOLDER TEST_FOLDER [PRETRAINED] [OUT]  - fine-tune a classifier from the shipped (or any) MAE", FineTuneClassifier.Run),
    ["segment"] = ("segment IMAGE_FOLDER MASK_FOLDER CLASSES [IGNORE]  - semantic segmentation head on the MAE encoder", SegmentImages.Run),
    ["detect"] = ("detect IMAGE_FOLDER YOLO_LABEL_FOLDER CLASS_NAMES  - object detection (FCOS on a ViTDet pyramid)", DetectObjects.Run),
    ["official-checkpoint"] = ("official-checkpoint FILE.pth [IMAGE...]  - load Meta's published MAE weights (or a Hugging Face ViTMAE file) and reconstruct", LoadOfficialCheckpoint.Run),
};
if (args.Length == 0 || !samples.TryGetValue(args[0], out var sample))
{
    Console.WriteLine("usage: dotnet run --project samples/Tasks -- SAMPLE ARGS...");
    foreach (var (_, s) in samples) Console.WriteLine($"  {s.Usage}");
    return args.Length == 0 ? 0 : 2;
}
return sample.Run(args[1..]);
